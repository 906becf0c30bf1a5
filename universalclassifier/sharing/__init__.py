"""Sharing a trained model as one file: `uc_export` writes a zip with a model card and a manifest
(`sharing.export`), `uc_install_model` installs one into a data root (`sharing.install`), and predict() reads one in
place of an artifact folder (`sharing.cache`). Every zip is checked member by member before use
(`sharing.safe_zip`, `sharing.manifest`).
"""
