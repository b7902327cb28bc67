"""Similarity saliency: SBSM and other methods behind one interface, precomputed on GPU workers."""
