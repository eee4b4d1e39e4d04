"""Pure strategies: book and market state in, Intents out."""
