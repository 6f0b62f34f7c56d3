"""The runner: CLI (`bench`), run loop, result records, leaderboard renderer, performance harness."""
