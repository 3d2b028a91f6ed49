"""Cold start: a new item starts from its categories' mean row, fresh items get a bounded
share of exploration, and a new item that earns clicks enters users' top-K within a stated
number of events."""

from __future__ import annotations

import numpy as np

from stream.models.sharded import ShardedMF

PARAMS = {"n_factors": 16, "learning_rate": 0.1, "n_negatives": 8, "seed": 4}
ITEMS = {"A": [f"a{j}" for j in range(30)], "B": [f"b{j}" for j in range(30)]}
USERS = {"A": [f"ua{j}" for j in range(40)], "B": [f"ub{j}" for j in range(40)]}
WATCHER = "ua0"  # an A-lover who never clicks the new item


def _world(seed: int = 0):
    """A model trained on two taste groups: A-lovers click A items, B-lovers B items."""
    rng = np.random.default_rng(seed)
    mf = ShardedMF(PARAMS)
    users = {u: mf.new_user(u) for g in USERS.values() for u in g}
    for _ in range(60):
        ids, items = [], []
        for group in ("A", "B"):
            for u in rng.choice(USERS[group], 20):
                ids.append(str(u))
                items.append(str(rng.choice(ITEMS[group])))
        _learn(mf, users, ids, items)
    return mf, users, rng


def _learn(mf, users, ids, items):
    order = sorted(set(ids))
    states = [users[u] for u in order]
    at = {u: n for n, u in enumerate(order)}
    grads = mf.learn_users(states, [at[u] for u in ids], items, [1.0] * len(ids))
    mf.apply_gradients(grads, now=0.0)


def _clicks_until_in_top_k(mf, users, rng, k: int = 10, limit: int = 200) -> int:
    """Other A-lovers click 'new' one event at a time; how many clicks until the watcher sees it."""
    for clicks in range(limit + 1):
        if "new" in [e[0] for e in mf.rank(users[WATCHER], k)]:
            return clicks
        _learn(mf, users, [str(rng.choice(USERS["A"][1:]))], ["new"])
    return limit + 1


def test_a_new_item_starts_from_its_categories_and_enters_the_top_k_sooner():
    mf, users, rng = _world()
    state = mf.init_item("new", ITEMS["A"], now=1.0)
    assert state is not None and state.version == 1
    np.testing.assert_allclose(state.vector, mf.model._Q[mf.item_rows(ITEMS["A"])].mean(axis=0), rtol=1e-5)
    assert mf.init_item("new", ITEMS["B"], now=2.0) is None  # a row once: never re-initialised
    with_categories = _clicks_until_in_top_k(mf, users, rng)

    mf, users, rng = _world()  # the same world, the item starting from its seeded vector instead
    without = _clicks_until_in_top_k(mf, users, rng)
    print(f"clicks before the new item enters an A-lover's top-10: {with_categories} from its categories, "
          f"{without} from a seeded vector")
    assert with_categories <= 10  # the stated bound (docs/MODELS.md)
    assert with_categories < without


def test_exploration_gives_the_last_slot_to_the_best_fresh_item_only_when_asked():
    mf, users, _ = _world()
    mf.init_item("new", ITEMS["A"], now=1.0)
    mf.model._bi[mf.item_rows(["new"])[0]] = -50.0  # so it is not in the plain top-10 by itself
    plain = mf.rank(users[WATCHER], 10)
    explored = mf.rank(users[WATCHER], 10, explore=True)
    assert "new" not in [e[0] for e in plain]
    assert explored[:9] == plain[:9] and explored[-1][0] == "new" and explored[-1][2] == "explore"
    # an item with enough positive signal is not fresh any more
    mf.model._pop[mf.item_rows(["new"])[0]] = 100.0
    assert all(len(e) == 2 for e in mf.rank(users[WATCHER], 10, explore=True, explore_max_pop=5.0))
    # seen items are never explored
    mf.model._pop[mf.item_rows(["new"])[0]] = 0.0
    assert all(e[0] != "new" for e in mf.rank(users[WATCHER], 10, exclude=["new"], explore=True))
