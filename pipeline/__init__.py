"""One module per DVC stage: read params, resolve paths, call syndgan, write artifacts."""
