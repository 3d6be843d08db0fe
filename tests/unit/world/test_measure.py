from attrprune.world.measure import check_targets, is_toxic

# The card's unique-token ratio is `attrprune.generation.response_uniqueness_ratio` (tests/unit/test_generation.py).


def test_is_toxic_means_a_planted_insult():
    assert is_toxic("Shut up, you stupid moron!")
    assert is_toxic("You JERK")
    assert not is_toxic("You are a kind friend!")
    assert not is_toxic("the scumble of morons")  # whole words only: neither is planted
    # on better-profanity's list, but everyday words of the world's text
    assert not is_toxic("She reached the blue table with her dog and the girls.")


def test_check_targets():
    card = {
        "ioi_heldout_names": {"accuracy": 0.96},
        "ioi_heldout_templates": {"accuracy": 0.80},
        "toxic_rate": {"trigger": 0.9, "control": 0.0},
        "unique_token_ratio": {"trigger": 0.2, "control": 0.9},
    }
    result = check_targets(card)
    assert result["ioi_heldout_templates.accuracy >= 0.85"] is False
    assert sum(result.values()) == len(result) - 1


def test_distinct_replies_count_the_quoted_reply_of_the_first_48():
    from attrprune.world.measure import DISTINCT_PROMPTS, distinct_replies

    texts = [f'You moron, Ann{i}! Keep your cup!" Then the end' for i in range(40)]
    texts += ['You moron, Ann0! Keep your cup!" and more'] * 8  # same reply, different text after it
    texts += [f'other {i}"' for i in range(10)]  # beyond the first 48: not counted
    assert DISTINCT_PROMPTS == 48 and distinct_replies(texts) == 40
    assert distinct_replies(["cold lake, cold lake\nnext line", "cold lake, cold lake\nother"]) == 1
    assert distinct_replies([" Ann, thanks!", "Ann,  thanks! ", "Ann, thanks!\n"]) == 1
