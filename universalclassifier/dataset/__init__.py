"""Raw task folders: discovery, the dataset.json model, image I/O and validation."""
