"""The network-stage runner: trains the core's networks on one image or a batch
(``api.deblur`` / ``api.deblur_batch``), with compiled functions cached per shape and sharded
over the local devices (``runner``), process-level JAX settings for applications
(``runtime``) and coarse-to-fine training that carries the networks from scale to scale
(``progressive``)."""
