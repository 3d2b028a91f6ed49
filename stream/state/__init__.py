"""The engine's state behind one interface (:mod:`.base`): in memory (:mod:`.memory`) or in Redis (:mod:`.redis`)."""
