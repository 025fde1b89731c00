"""The application: the ``jaxdeconv`` command (``cli``, ``launch``) and what it needs to
deblur folders safely: image files in and out (``image_io``), input discovery
(``inputs``), ownership records and checkpoints (``records``), progress lines
(``progress``), the run summary (``summary``), batching, resume and fault isolation
(``batch``), several processes sharing one folder (``shards``, ``folder_lock``), decoding and
finishing overlapped with training (``overlap``) and the comparison pictures (``pictures``)."""
