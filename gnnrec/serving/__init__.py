"""From a trained run to recommendations in production: ``export`` (embeddings, ids, index, manifest) and
``server`` (the HTTP service over an export, needing the ``serve`` extra)."""
