"""Assets shipped with lightflow: the embedded ``builtin:digits`` model (``digits/``, a
diffusers folder) and the scripts that train it (``train/``)."""
