"""Importing other tools' datasets (InnerEye, DeepReg, a plain folder) as a raw task folder: `uc_import`.

Each source kind has its reader (`innereye`, `deepreg`, `folder`), which only reads its source and lists the cases
it found and the ones it skipped; `task_writer` writes every kind's cases as one raw task folder, atomically.
"""
