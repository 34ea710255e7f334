"""Losses: likelihoods and physics penalties, all masked."""
