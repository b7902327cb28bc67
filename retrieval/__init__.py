"""Image archives (COCO format), class statistics, features, search and IQR re-ranking."""
