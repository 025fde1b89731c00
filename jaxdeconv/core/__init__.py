"""The jitted core: the blur operator, the generator networks (registered by name as
plug-ins), the Monte-Carlo loss, the learning-rate schedules and the training step. Pure JAX
functions of arrays and a config, with no files, no host-side loops and no knowledge of the
layers above; everything else in jaxdeconv builds on these modules."""
