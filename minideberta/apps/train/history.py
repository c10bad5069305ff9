"""The record of a training run: per step (loss, learning rate, gradient norm) and per evaluation,
as columns that plot and save as JSON (``loop.py`` fills it; a checkpoint keeps it)."""


class History:
    """What a run recorded, as columns of equal length (easy to plot and to save as JSON):

    ``train``: ``step``, ``epoch`` (examples seen / dataset size), ``lr``, ``loss``, ``grad_norm``
    (before clipping), one entry per optimizer step; ``eval``: ``step``, ``loss`` and one column
    per metric, one entry per evaluation.
    """

    def __init__(self, train=None, eval=None):
        self.train = train if train is not None else {k: [] for k in ("step", "epoch", "lr", "loss", "grad_norm")}
        self.eval = eval if eval is not None else {"step": []}

    def log_train(self, **row):
        for key, value in row.items():
            self.train[key].append(value)

    def log_eval(self, step, results):
        if not self.eval["step"]:
            self.eval.update({key: [] for key in results})
        self.eval["step"].append(step)
        for key, value in results.items():
            self.eval[key].append(value)

    def to_dict(self):
        return {"train": self.train, "eval": self.eval}

    @classmethod
    def from_dict(cls, d):
        return cls({k: list(v) for k, v in d["train"].items()}, {k: list(v) for k, v in d["eval"].items()})

    def plot(self):
        """A matplotlib figure: loss (train and eval), eval metrics, learning rate, gradient norm."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot draws with matplotlib, which is not installed: pip install matplotlib "
                              "(or pip install 'minideberta[notebooks]'); the numbers are in history.train "
                              "and history.eval") from None
        metrics = [k for k in self.eval if k not in ("step", "loss")]
        panels = ["loss"] + (["metrics"] if metrics else []) + ["lr", "grad_norm"]
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
        for ax, panel in zip(axes[0], panels):
            ax.set_xlabel("step")
            if panel == "loss":
                ax.plot(self.train["step"], self.train["loss"], label="train", lw=1)
                if self.eval["step"]:
                    ax.plot(self.eval["step"], self.eval["loss"], "o-", label="eval")
                ax.legend()
            elif panel == "metrics":
                for key in metrics:
                    ax.plot(self.eval["step"], self.eval[key], "o-", label=key)
                ax.legend()
            else:
                ax.plot(self.train["step"], self.train[panel], lw=1)
            ax.set_title({"loss": "loss", "metrics": "eval metrics", "lr": "learning rate",
                          "grad_norm": "gradient norm (before clipping)"}[panel])
        fig.tight_layout()
        return fig

    def __repr__(self):
        text = f"History({len(self.train['step'])} steps"
        if self.train["step"]:
            text += f", last loss {self.train['loss'][-1]:.4g}"
        for key, values in self.eval.items():
            if key != "step" and values:
                text += f", last eval {key} {values[-1]:.4g}"
        return text + ")"
