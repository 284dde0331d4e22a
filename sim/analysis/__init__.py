"""From latent histories to what a trial reports: data cutoff, observed data, endpoints, datasets."""
