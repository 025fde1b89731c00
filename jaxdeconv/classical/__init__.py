"""Host-side classical pieces around the networks: non-blind deconvolution, kernel
refinement by alternation, image and kernel resampling between scales, the automatic kernel
size, blind failure checks on a kernel, and the choice of crop to estimate on. NumPy/JAX
functions with no training in them; the two-stage pipeline (``jaxdeconv.pipeline``) combines
them with the network stage."""
