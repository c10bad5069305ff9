"""DeBERTa-v2/v3 on one screen: the whole forward, then its backward, over a parameter dict and a config.

    out, cache = forward(p, config, x, task, labels)       # out["logits"], out["loss"], out["hidden_states"]
    dinputs_embeds, grads = backward(p, dlogits, cache)     # dlogits None: the gradient of out["loss"]

``p`` holds every array under its Hugging Face name (``deberta.encoder.layer.0.attention.self.query_proj.weight``),
``x`` the checked inputs (``inputs.prepare_inputs``: ids, masks, positions, types). Top to bottom:

    1. embeddings      h_0 = mask * LayerNorm(word[ids] (+ position[pos]) (+ type[types]))    embeddings.py
    2. relative table  P = LayerNorm(rel_embeddings), (2k, D), read by every layer            encoder.py
    3. each layer      h_l = FFN(attention(h_{l-1}, P)), c2c + c2p + p2c; nGiE beside layer 1  encoder.py, attention.py
    4. EMD             q = layer_L(h_{L-1}, queries=layer_L(h_{L-1}, queries=h_{L-1} + pos))  emd.py (masked LM)
    5. a head          logits = head(h_L, or q)                                               heads.py
    6. the loss        loss = task loss(logits, labels)                                       losses.py

``task`` picks the head and loss: "model" (none: the hidden states), "masked_lm", "replaced_token",
"sequence" and "choice" (pooler + classifier; choice scores ``choices`` options per example),
"token" (a classifier on every token), "qa" ((B, N, 2) start and end logits). ``backward`` undoes the
same lines bottom to top, one for each. No classes, no I/O, no renaming: the transformers-compatible
classes (model.py, tasks.py, masked_lm.py) check the inputs, call these two functions, and name the outputs.
"""
from typing import NamedTuple

from . import embeddings, emd, encoder, heads, losses, ngie
from .attention import probabilities
from .backend import get_xp
from .params import add_grads, prefixed, subtree

WORD = "deberta.embeddings.word_embeddings.weight"  # the input table, also the masked LM's (tied) decoder
ENC = "deberta.encoder"


class DebertaCache(NamedTuple):
    config: object  # DebertaV2Config
    task: str  # which head and loss ran
    embeddings: object  # embeddings.EmbeddingsCache
    relative: object  # encoder.RelativeTable: the shared table and its LayerNorm's cache
    layers: list  # one encoder.LayerCache per layer, in order
    conv: object  # ngie.NgieCache of the convolution beside layer 1, None without one
    emd: object  # emd.EMDCache, None without the Enhanced Mask Decoder
    decode: object  # (B, N) bool: the positions the masked LM decoded (None: all); with EMD, (B, K) of its rows
    decoded_shape: tuple  # (B, N, D) (EMD: (B, K, D)): the states the head read, before ``decode`` picked rows
    pooler: object  # heads.PoolerCache ("sequence", "choice"), else None
    head: object  # the head's cache (heads.py), None for "model"
    loss: object  # losses.TaskLossCache, None without labels
    had_embeds: bool  # the forward took inputs_embeds: their gradient is returned
    choices: object  # "choice": the options per example C (the batch ran as B*C sequences); None otherwise


def forward(p, config, x, task="model", labels=None, use_emd=False, rng=None, decode=None, choices=None,
            output_attentions=False, keep_cache=True, keep_states=True):
    """use_emd: decode through the Enhanced Mask Decoder; decode (B, N) bool: the masked LM predicts these
    positions only (labels then (B, N), read there); rng: a Generator for dropout (None: evaluation);
    keep_cache False: inference, no cache and no backward; keep_states False: only the last two hidden states."""
    L = config.num_hidden_layers
    # 1. embeddings: (B, N) ids -> (B, N, D)
    h, emb = embeddings.forward(subtree(p, "deberta.embeddings"), x.input_ids, x.token_type_ids, x.position_ids,
                                x.masks.token, config, x.inputs_embeds, rng)
    # 2. the relative-position table every layer reads: (2k, D), and the row of each distance
    rel = encoder.relative_embeddings_forward(subtree(p, ENC), config, h.shape[1])
    # 3. each layer: (B, N, D) -> (B, N, D); nGiE's convolution of h_0 joins the first
    states, attentions, layers, conv = [h], [], [], None
    for i in range(L):
        h, layer = encoder.layer_forward(subtree(p, f"{ENC}.layer.{i}"), h, x.masks.pair, config, rel.table, rel.rows,
                                         rng=rng)
        if i == 0 and config.conv_kernel_size > 0:
            h, conv = ngie.forward(subtree(p, f"{ENC}.conv"), states[0], h, x.masks.token, config, rng)
        if output_attentions:
            attentions.append(probabilities(layer.attention))
        layers.append(layer if keep_cache else None)
        del layer  # without a backward to come, the layer's cache is freed before the next layer runs
        states.append(h)
        if not keep_states:
            del states[:-2]  # the heads and EMD read the last two only
    # 4. the Enhanced Mask Decoder: the last layer twice more, queries = h_{L-1} + absolute positions
    decoded, emd_cache, pick = h, None, decode
    if use_emd and decode is None:
        decoded, emd_cache = emd.forward(subtree(p, "deberta"), states[-2], x.masks.pair, x.position_ids, config, rng)
    elif use_emd:  # the same states, decoded at the chosen positions only (a speed device, emd.py): (B, K, D)
        (decoded, pick), emd_cache = emd.forward_rows(subtree(p, "deberta"), states[-2], x.masks.pair,
                                                      x.position_ids, config, decode, rng)
    decoded_shape = decoded.shape
    if decode is not None:
        decoded = decoded[pick]  # (B, N, D) or EMD's (B, K, D) -> (M, D): the positions to predict
        labels = None if labels is None else labels[decode]
    # 5. a head: hidden states -> logits
    pooler = head = logits = None
    if task == "masked_lm":
        logits, head = heads.mlm_head_forward(heads.mlm_head_params(p, config), decoded, p[WORD], config)
    elif task == "replaced_token":
        logits, head = heads.rtd_head_forward(subtree(p, "mask_predictions"), decoded, config)
    elif task in ("sequence", "choice"):
        pooled, pooler = heads.pooler_forward(subtree(p, "pooler"), h, config, rng)  # the [CLS] state
        rate = config.hidden_dropout_prob if config.cls_dropout is None else config.cls_dropout
        logits, head = heads.classifier_forward(subtree(p, "classifier"), pooled, rate, rng)
        if task == "choice":
            logits = logits.reshape(-1, choices)  # (B*C, 1) -> (B, C)
    elif task == "token":
        logits, head = heads.classifier_forward(subtree(p, "classifier"), h, config.hidden_dropout_prob, rng)
    elif task == "qa":
        logits, head = heads.classifier_forward(subtree(p, "qa_outputs"), h, 0.0)  # (B, N, 2)
    # 6. the loss
    loss = loss_cache = None
    if labels is not None:
        loss, loss_cache = losses.task_loss_forward(task, logits, labels, config, x.masks.token)
    out = {"logits": logits, "loss": loss, "hidden_states": states, "attentions": attentions}
    cache = DebertaCache(config=config, task=task, embeddings=emb, relative=rel, layers=layers, conv=conv,
                         emd=emd_cache, decode=pick, decoded_shape=decoded_shape, pooler=pooler, head=head,
                         loss=loss_cache, had_embeds=x.inputs_embeds is not None, choices=choices)
    return out, cache if keep_cache else None


def backward(p, dlogits, cache):
    """The gradient of the loss (dlogits None) or of the logits' function whose gradient ``dlogits`` is
    (for "model": of the last hidden state). Returns ``dinputs_embeds, grads``: dinputs_embeds None
    unless the forward took inputs_embeds; grads under the names of ``p``, for the parameters the forward used."""
    c, config, grads = cache, cache.config, {}
    # 6. the loss
    if dlogits is None:
        dlogits = losses.task_loss_backward(1.0, c.loss)
    # 5. the head
    dh = ddecoded = None
    if c.task == "masked_lm":
        (ddecoded, dword), g = heads.mlm_head_backward(heads.mlm_head_params(p, config), dlogits, c.head)
        add_grads(grads, {**heads.mlm_head_grads(g, config), WORD: dword})  # the tied decoder's share of WORD
    elif c.task == "replaced_token":
        ddecoded, g = heads.rtd_head_backward(subtree(p, "mask_predictions"), dlogits, c.head)
        add_grads(grads, prefixed(g, "mask_predictions"))
    elif c.task in ("sequence", "choice"):
        if c.task == "choice":
            dlogits = dlogits.reshape(-1, 1)  # (B, C) -> (B*C, 1)
        dpooled, g = heads.classifier_backward(subtree(p, "classifier"), dlogits, c.head)
        add_grads(grads, prefixed(g, "classifier"))
        dh, g = heads.pooler_backward(subtree(p, "pooler"), dpooled, c.pooler)
        add_grads(grads, prefixed(g, "pooler"))
    elif c.task in ("token", "qa"):
        name = "classifier" if c.task == "token" else "qa_outputs"
        dh, g = heads.classifier_backward(subtree(p, name), dlogits, c.head)
        add_grads(grads, prefixed(g, name))
    else:
        dh = dlogits  # "model": the gradient of the last hidden state
    if c.decode is not None:  # in the forward: decoded = decoded[decode]
        rows, ddecoded = ddecoded, get_xp(ddecoded).zeros(c.decoded_shape, dtype=ddecoded.dtype)
        ddecoded[c.decode] = rows
    # 4. the Enhanced Mask Decoder: its gradient enters below the last layer, whose own output went unused
    top = config.num_hidden_layers
    if c.emd is not None:
        dh, g = emd.backward(subtree(p, "deberta"), ddecoded, c.emd)
        add_grads(grads, prefixed(g, "deberta"))
        top -= 1
    elif ddecoded is not None:
        dh = ddecoded
    # 3. each layer, last first
    dtables = []
    for i in reversed(range(top)):
        if i == 0 and c.conv is not None:
            (dconv_in, dh), g = ngie.backward(subtree(p, f"{ENC}.conv"), dh, c.conv)
            add_grads(grads, prefixed(g, f"{ENC}.conv"))
        (dh, _, drel), g = encoder.layer_backward(subtree(p, f"{ENC}.layer.{i}"), dh, c.layers[i])
        add_grads(grads, prefixed(g, f"{ENC}.layer.{i}"))
        dtables.append(drel)  # this layer's share of the relative table's gradient
        if i == 0 and c.conv is not None:
            dh = dh + dconv_in  # h_0 also fed the convolution
    # 2. the relative table: every layer's share, then its LayerNorm
    _, g = encoder.relative_embeddings_backward(subtree(p, ENC), dtables, c.relative)
    add_grads(grads, prefixed(g, ENC))
    # 1. embeddings
    dembeds, g = embeddings.backward(subtree(p, "deberta.embeddings"), dh, c.embeddings)
    add_grads(grads, prefixed(g, "deberta.embeddings"))
    return (dembeds if c.had_embeds else None), grads
