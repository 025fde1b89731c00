"""The benchmark layer: image-quality metrics, the benchmark datasets, the synthetic suite,
the evaluation driver and ablations. Not imported by ``import jaxdeconv``; import what you
need, e.g. ``from jaxdeconv.classical import metrics``."""
