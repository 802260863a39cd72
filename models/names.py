"""Names the product refers to: query strategies, uncertainty measures, generative candidates (the settings),
and the history features of raw transactions (the screen says from them what is unusual).

Plain constants with no imports, so that the web's settings validation and the screen can name them without
loading the machine learning (models.strategies, models.generative_candidates and models.features use them).
"""
HIGH_RISK = "high risk"
UNCERTAIN = "uncertain"
EXPLORATION = "exploration"
COLD_START = "cold start"
COMMITTEE = "committee"  # query by committee (models.committee): binary datasets; elsewhere its share is uncertain's
# ... and only while the selected model's cross-validated AUPRC on the labels is below this (or not measured yet):
# on the credit card it is above from the first model, and there committee picks cost AUPRC and frauds shown
# (bench/results/committee_dev.txt)
COMMITTEE_WEAK_BELOW = 0.5
MIX_STRATEGIES = (HIGH_RISK, UNCERTAIN, COMMITTEE, EXPLORATION)
# picks of typical items of parts of the pool no label covers (models.adaptive.uncovered): in the cold start and
# the adaptive loop's young model, and the cold start's picks once no positive came in its first labels
DIVERSITY = "diversity"
WIDER_SEARCH = "wider search"
ADAPTIVE_ARMS = (HIGH_RISK, UNCERTAIN, EXPLORATION, DIVERSITY)
WIDEN_AFTER = 20  # the cold start: labels without a positive before its search widens
# why a strategy picked an item, as the labeling screen says it
STRATEGY_WHY = {
    HIGH_RISK: "the model rates it among the likeliest frauds",
    UNCERTAIN: "the model is least sure of it, so your answer teaches it most",
    COMMITTEE: "models fitted on different draws of the labels disagree most about it, so your answer settles what "
               "the labels leave open",
    EXPLORATION: "drawn at random, to find what the model overlooks",
    COLD_START: "no model yet: it is unusual against the pool",
    DIVERSITY: "it stands for a part of the pool no label covers yet",
    WIDER_SEARCH: "no fraud came in the first labels, so the search left the anomaly score and spreads over the pool",
}
# the same, for a queue the blend picked while its logistic part gives the suggestions (models.prequential)
STRATEGY_WHY_BLEND_PICKED = {
    HIGH_RISK: "the blend of logistic and boosted models rates it among the likeliest frauds; the suggestion is "
               "its logistic part's, which serves until the labels show the blend ranks as well",
    UNCERTAIN: "the blend of logistic and boosted models is least sure of it, so your answer teaches it most; the "
               "suggestion is its logistic part's, which serves until the labels show the blend ranks as well",
}
UNCERTAINTY_MEASURES = ("least_confidence", "margin", "entropy")

LATENT = "latent"
VAE_BALANCE = "vae_balance"
SGAN = "sgan"
GENERATIVE_CANDIDATES = (LATENT, VAE_BALANCE, SGAN)

# history features of raw transactions (models.features.entity_features), formatted with the entity columns
TRANSACTIONS_IN = "{entity}: transactions in {window}"
MEAN_AMOUNT_IN = "{card}: mean amount in {window}"
AGAINST_USUAL = "amount against {card}'s usual (log ratio, 30d)"
SINCE_PREVIOUS = "{card}: log seconds since its previous"
FIRST_AT = "first {other} for this {card}"
