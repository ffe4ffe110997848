"""Serve a registered model over HTTP: `signature` checks request rows against the model's
input signature, `server` answers /predict, /health and /metadata and follows the ref (a stage
or an alias) as it moves. Import the submodules: this package stays light to import."""
