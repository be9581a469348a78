"""Human feedback, annotation queue and dataset export."""
