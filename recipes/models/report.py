"""Markdown tables of the shipped models' test results, from results/*.json (run.sh writes them).

Run: python recipes/models/report.py
"""

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def vae_table(corpus: str) -> str:
    rows = ["| model | NLL nats/line | KL | MI | active units | recon char acc. (mean / refined) | perplexity |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    lm = load(f"{corpus}-lm")
    if lm:
        rows.append(f"| `{corpus}-lm` (RNN LM, the VAE's decoder size) | {lm['nll_nats_per_item']:.2f} | - | - | - "
                    f"| - | {lm['perplexity']:.1f} |")
    for name, label in ((corpus, "shipped VAE"), (f"{corpus}-before-refit", "the same before the encoder refit"),
                        (f"{corpus}-bowman", "VAE, Bowman's settings")):
        r = load(name)
        if r:
            refined = f" / {r['recon_char_accuracy_refined']:.3f}" if "recon_char_accuracy_refined" in r else ""
            rows.append(f"| `{name}` ({label}) | {r['iw_nll']:.2f} (IW, {r['iw_samples']} samples) | {r['kl']:.2f} "
                        f"| {r['mutual_info']:.2f} | {r['active_units']}/{r['latent_dim']} "
                        f"| {r['recon_char_accuracy']:.3f}{refined} | {r['perplexity']:.1f} |")
    return "\n".join(rows)


def tradeoff_table() -> str:
    """Free bits against IW-NLL, KL and reconstruction, all at the same number of steps."""
    rows = ["| free bits per dimension | IW-NLL nats/line | KL | active units | recon char acc. |",
            "| --- | --- | --- | --- | --- |"]
    for free_bits, name in (("0 (Bowman)", "poems-bowman"), ("0.5", "poems-fb0.5"), ("1.0", "poems-fb1.0")):
        r = load(name)
        if r:
            rows.append(f"| {free_bits} | {r['iw_nll']:.2f} | {r['kl']:.2f} | {r['active_units']}/{r['latent_dim']} "
                        f"| {r['recon_char_accuracy']:.3f} |")
    return "\n".join(rows)


def main():
    lm = load("shakespeare")
    if lm:
        print("| model | test tokens | bits/token | bits/char | perplexity |\n| --- | --- | --- | --- | --- |")
        print(f"| `shakespeare` | {lm['tokens']:,} | {lm['bits_per_token']:.3f} | {lm['bits_per_char']:.3f} "
              f"| {lm['perplexity']:.1f} |\n")
    for corpus in ("poems", "verse"):
        if load(corpus):
            print(f"**{corpus}** (first {load(corpus)['lines']} test lines)\n")
            print(vae_table(corpus) + "\n")
    if load("poems-fb1.0"):
        print("**poems, trade-off** (2,576 steps each, first 500 test lines)\n")
        print(tradeoff_table())


if __name__ == "__main__":
    main()
