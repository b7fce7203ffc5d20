"""EPCIS 2.0 / CBV 2.0 export: our events as JSON-LD, with CBV 2.0 event hashes as ids."""
