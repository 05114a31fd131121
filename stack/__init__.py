"""Running the lab's processes natively: Redis, workers, Flower, and the launcher."""
