"""Small shared helpers of attrprune.io."""

from attrprune.io import model_name


def test_model_name_is_the_recorded_alias_else_the_folder():
    # A local model's folder need not be named like its config alias; tables key by the alias.
    assert model_name({"model": "tiny-llama", "model_dir": "/data/ckpt/llama"}) == "tiny-llama"
    assert model_name({"model_dir": "world/models/world-opt"}) == "world-opt"
