"""The product index: the store on disk (write, load, summary), nearest-neighbour backends, the embedding cache."""
