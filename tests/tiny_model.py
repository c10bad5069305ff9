"""A tiny random DeBERTa-v3-shaped folder with the shipped vocabulary, for the task commands' tests."""
import json
import shutil

from minideberta import DebertaV2Config, DebertaV2Model

from conftest import REPO

SHIPPED = REPO / "weights" / "minideberta-v3-tiny"


def tiny_model_folder(folder):
    """The shipped discriminator's config and vocabulary, 16 wide and one layer deep, random weights."""
    config = json.loads((SHIPPED / "config.json").read_text())
    config.update(hidden_size=16, embedding_size=16, pooler_hidden_size=16, num_hidden_layers=1,
                  num_attention_heads=2, attention_head_size=8, intermediate_size=32)
    DebertaV2Model(DebertaV2Config.from_dict(config), seed=0).save_pretrained(folder)
    for name in ("spm.model", "tokenizer_config.json"):
        shutil.copy(SHIPPED / name, folder / name)
    return folder
