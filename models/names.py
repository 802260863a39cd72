"""Names the product's settings refer to: query strategies, uncertainty measures, generative candidates.

Plain constants with no imports, so that the web's settings validation can name them without loading the
machine learning (models.strategies and models.generative_candidates use them).
"""
HIGH_RISK = "high risk"
UNCERTAIN = "uncertain"
EXPLORATION = "exploration"
COLD_START = "cold start"
MIX_STRATEGIES = (HIGH_RISK, UNCERTAIN, EXPLORATION)
UNCERTAINTY_MEASURES = ("least_confidence", "margin", "entropy")

LATENT = "latent"
VAE_BALANCE = "vae_balance"
SGAN = "sgan"
GENERATIVE_CANDIDATES = (LATENT, VAE_BALANCE, SGAN)
