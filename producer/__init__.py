"""The producer: enqueue lab tasks, measure the drain, account for every task."""
