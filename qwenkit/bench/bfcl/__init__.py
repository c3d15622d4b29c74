"""BFCL (Berkeley Function Calling Leaderboard) single-turn AST categories, scored as BFCL scores them."""
