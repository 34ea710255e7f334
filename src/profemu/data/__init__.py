"""Data layer: ProfileDataset, files, CAMELS adapter, splits, transforms, mock universe."""
