"""Command line: ``gnnrec train | search | augment | compare | report | evaluate | ablate | recommend | export | serve |
expressiveness | encode | graph | data``."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from gnnrec.errors import GnnrecError


def cmd_train(args) -> None:
    from gnnrec.config import load_config
    from gnnrec.report import beyond_table, metric_table
    from gnnrec.train import train

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not config.endswith((".yaml", ".yml")):
        config, overrides = None, [config, *overrides]  # no config file, only overrides
    cfg = load_config(config, overrides)
    result = train(cfg)
    if not result.is_global_zero:
        return
    m = result.metrics
    print(f"\nrun folder: {result.run_dir}")
    if m["epochs_trained"]:
        print(f"{m['model']} on {m['dataset']}, protocol {m['protocol']}, best epoch {m['best_epoch']} of "
              f"{m['epochs_trained']}, {m['seconds_per_epoch']:.2f} s per training epoch, "
              f"{m['seconds_per_evaluation']:.2f} s per validation")
    else:
        print(f"{m['model']} on {m['dataset']}, protocol {m['protocol']}: learning-free, evaluated without training")
    print(metric_table({s: m[s] for s in ("valid", "test") if m[s].get("users", 1)}))  # no empty validation block
    print(beyond_table({s: m[s] for s in ("valid", "test") if m[s].get("users", 1)}))
    print(f"per-user test results: {result.run_dir / 'test_per_user.npz'} (by user group: test_groups.json)")


def cmd_search(args) -> None:
    from gnnrec.config import load_config
    from gnnrec.search import search

    overrides = list(args.overrides)
    if args.random is not None:
        overrides.append(f"search.random={args.random}")
    result = search(load_config(args.config, overrides))
    print(f"\nsearch folder: {result['folder']}\n{result['table']}")
    best = result["best"]
    which = f"{best['run']} {best['params']}" if "run" in best else f"{best['params']}, mean of seeds {best['seeds']}"
    print(f"selected on {result['selected_on'].replace('valid/recall@20', 'validation Recall@20')}: {which} -> "
          f"test Recall@20 {best['test_recall@20']:.4f}, NDCG@20 {best['test_ndcg@20']:.4f}")


def cmd_evaluate(args) -> None:
    from gnnrec.eval.groups import group_table
    from gnnrec.report import beyond_table, group_text_table, headline_k, metric_table
    from gnnrec.runs import Run

    run = Run.open(args.checkpoint, list(args.overrides))
    splits = ["valid", "test"] if args.split == "both" else [args.split]
    evaluation = run.evaluate(splits, args.protocol, args.per_user)
    cfg, dataset, protocol = run.config, run.dataset, evaluation.protocol
    results, per_user = evaluation.metrics, evaluation.per_user
    print(f"{cfg['model']['name']} on {dataset.name}, protocol {protocol}")
    print(metric_table(results))
    print(beyond_table(results))
    if "test" in per_user:
        test = per_user["test"]
        k = headline_k(test.ks)
        print(f"\ntest by user group (training-degree quartiles Q1-Q4 of evaluated users; cold: at most "
              f"{test.meta['cold_degree']} training interactions; head/tail: the held-out items by popularity)")
        print(group_text_table(group_table(test), k))
    for s, res in per_user.items():
        if res.path is not None:
            print(f"{s} per-user results: {res.path}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            json.dump({"protocol": protocol, **results}, fh, indent=2)


def cmd_ablate(args) -> None:
    from gnnrec.analysis.ablate import ablate, ablation_table
    from gnnrec.runs import resolve_checkpoint

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    result = ablate(args.checkpoint, modes, args.seed, args.retrain, list(args.overrides))
    out = args.out or resolve_checkpoint(args.checkpoint).parent.parent / "ablation.json"
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    print(f"{result['model']} on {result['dataset']}, protocol {result['protocol']}, modalities "
          f"{', '.join(result['modalities'])}")
    print(ablation_table(result))
    print(f"written: {out}")


def cmd_recommend(args) -> None:
    from gnnrec.recommend import original_ids
    from gnnrec.runs import Run

    if not args.user and not args.all:
        raise GnnrecError("give --user ID (the dataset's own user ids; repeat or comma-separate) or --all")
    run = Run.open(args.checkpoint, list(args.overrides))
    users = None if args.all else [u for group in args.user for u in group.split(",") if u]
    recs = run.recommend(users, k=args.k, exclude=args.exclude)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write("user\trank\titem\tscore\n")
            fh.writelines(f"{r['user']}\t{rank}\t{item}\t{score:.6g}\n" for r in recs
                          for rank, (item, score) in enumerate(zip(r["items"], r["scores"]), 1))
        print(f"top {args.k} for {len(recs)} users ({args.exclude} items excluded) -> {args.out}")
        return
    titles = run.dataset.item_info.get("title")
    item_index = {v: i for i, v in enumerate(original_ids(run.dataset, "item"))} if titles is not None else {}
    for r in recs:
        print(f"top {args.k} for user {r['user']} ({args.exclude} items excluded)")
        for rank, (item, score) in enumerate(zip(r["items"], r["scores"]), 1):
            title = f"  {titles[item_index[item]]}" if titles is not None else ""
            print(f"{rank:>3}. item {item:<10} score {score:.4f}{title}")


def cmd_export(args) -> None:
    from gnnrec.serving.export import export_run

    m = export_run(args.checkpoint, args.out, index=args.index, overrides=list(args.overrides),
                   recall_k=args.recall_k, recall_users=args.recall_users, overwrite=args.overwrite)
    print(f"exported {m['model']} on {m['dataset']}: {m['n_users']} users, {m['n_items']} items, dim {m['dim']} "
          f"-> {args.out}")
    if "recall" in m["index"]:
        r = m["index"]["recall"]
        print(f"{m['index']['type']} index recall@{r['k']} vs exact scoring: {r['value']:.4f} ({r['users']} users)")
    print(f"new items (POST /items): {m['cold_start']['method']}"
          + (f" ({m['cold_start']['reason']})" if "reason" in m["cold_start"] else ""))


def cmd_serve(args) -> None:
    from gnnrec.serving.server import serve

    serve(args.export, host=args.host, port=args.port)


def cmd_data_info(args) -> None:
    from gnnrec.data import load_dataset

    # the files as they are: no carved validation, no dropped cold pairs, unless the settings say otherwise
    settings = ["valid_ratio=0", "drop_cold=false", *([f"format={args.format}"] if args.format else []),
                *args.overrides]
    data = load_dataset(**data_settings(args.path, settings))
    stats = data.stats()
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        for key, value in stats.items():
            print(f"{key:<22} {value}")
    if args.card:
        from gnnrec.data.cards import check_against_card, load_card

        problems = check_against_card(load_card(args.card), args.path, stats)
        if problems:
            raise GnnrecError(f"{args.path} does not match {args.card}:\n  " + "\n  ".join(problems))
        print(f"matches {args.card}: files and statistics as expected")


def cmd_data_download(args) -> None:
    from gnnrec.data.cards import load_card
    from gnnrec.data.download import download

    pinned = load_card(args.card).get("sha256") or {}
    for name, digest in download(args.card, args.out, args.timeout).items():
        note = "verified" if pinned.get(name) else "no checksum on the card yet: pin this one"
        print(f"{name}: sha256 {digest} ({note})")


def cmd_data_ingest(args) -> None:
    from gnnrec.data.ingest import ingest_amazon, ingest_microlens

    if args.source == "amazon":
        kcore = 5 if args.kcore is None else args.kcore
        report = ingest_amazon(args.path, args.out, args.meta, args.name, kcore or None, args.strict)
        skipped = report["reviews"]["bad"] + report.get("meta", {}).get("bad", 0)
    else:
        report = ingest_microlens(args.path, args.out, args.name, args.kcore)
        skipped = 0
    print(f"{report['users']} users, {report['items']} items, {report['interactions']} interactions "
          f"(train {report['train']}, valid {report['valid']}, test {report['test']}); "
          f"{report['duplicates_dropped']} duplicates dropped, {skipped} malformed lines skipped -> {args.out}")


def data_settings(source: str, overrides: list[str]) -> dict:
    """``load_dataset`` arguments from SOURCE and ``key=value`` data settings (``data.`` optional, as ``train``)."""
    from gnnrec.config import load_config

    keys = [o if o.split("=", 1)[0] == "seed" or o.startswith("data.") else f"data.{o}" for o in overrides]
    cfg = load_config(None, [f"data.source={source}", *keys])
    return {"seed": cfg["seed"], **cfg["data"]}


def cmd_data_convert(args) -> None:
    from gnnrec.data import load_dataset
    from gnnrec.data.convert import to_mmrec

    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise GnnrecError(f"data settings are key=value (e.g. format=lightgcn), got {' '.join(bad)}")
    written = to_mmrec(load_dataset(**data_settings(args.source, list(args.overrides))), args.out, args.name)
    print(f"{written['name']}: {written['users']} users, {written['items']} items, train {written['train']}, "
          f"valid {written['valid']}, test {written['test']} -> {written['out']} ({', '.join(written['files'])})")


def cmd_expressiveness(args) -> None:
    from pathlib import Path

    from gnnrec.config import load_config
    from gnnrec.eval import FullRankingEvaluator
    from gnnrec.expressiveness.report import expressiveness_report, format_report
    from gnnrec.models import MODELS
    from gnnrec.runs import load_run, resolve_checkpoint
    from gnnrec.train import dataset_from_config, model_from_config

    if args.target in MODELS:  # a model by name: only learning-free ones make sense untrained
        cfg = load_config(None, [f"model.name={args.target}", f"data.source={args.data}", *args.overrides])
        dataset = dataset_from_config(cfg)
        model = model_from_config(cfg, dataset)
        if model.trainable:
            raise GnnrecError(f"'{args.target}' must be trained first: give its run folder instead")
        accuracy = FullRankingEvaluator(dataset, "test", cfg["eval"]["protocol"], [20]).evaluate(
            model.score_fn(), cfg["eval"]["batch_size"])
    else:
        ckpt = resolve_checkpoint(args.target)
        cfg, dataset, model = load_run(ckpt)
        metrics_file = ckpt.parent.parent / "metrics.json"
        accuracy = json.loads(metrics_file.read_text())["test"] if metrics_file.is_file() else {}
    report = expressiveness_report(model, dataset, args.users, args.pairs, args.seed)
    print(format_report(f"{cfg['model']['name']} on {dataset.name}", accuracy, report))
    if args.output:
        Path(args.output).write_text(json.dumps({"accuracy": accuracy, **report}, indent=2), encoding="utf-8")


def cmd_graph_build(args) -> None:
    import time

    import scipy.sparse as sp

    from gnnrec.data import load_dataset
    from gnnrec.graphs.knn import item_graph

    data = load_dataset(args.data, valid_ratio=0.0, drop_cold=False)
    weights = None
    if args.weights:
        try:
            weights = {k: float(v) for k, v in (part.split("=") for part in args.weights.split(","))}
        except ValueError:
            raise GnnrecError(f"--weights must look like image=0.1,text=0.9, got '{args.weights}'") from None
    start = time.perf_counter()
    graph = item_graph(data.features, k=args.k, weights=weights, binary=not args.weighted,
                       include_self=not args.no_self, cache_dir=args.cache_dir or None, progress=True,
                       backend=args.backend, precision=args.precision)
    print(f"item graph of {data.name}: {graph.shape[0]} items, {graph.nnz} edges, modalities "
          f"{sorted(data.features)}, k={args.k}, {time.perf_counter() - start:.1f} s")
    if args.out:
        sp.save_npz(args.out, graph)
        print(f"written to {args.out}")


def encode_inputs(args, template: str | None) -> tuple[list[str], list[str], str, str]:
    from gnnrec.encoders.pipeline import encode_inputs as inputs

    return inputs(args.data, args.items, template, args.format, getattr(args, "id_field", "item_id"))


def encode_to_store(args, manifest: dict, run) -> None:
    from gnnrec.encoders.pipeline import encode_to_store as encode

    done = encode(args.out, args.name, manifest, run, args.force)
    if done["skipped"]:
        print(f"{args.name}: already encoded in {args.out} with the same model, template and inputs (use --force)")
        return
    print(f"encoded {done['encoded']} items in {done['seconds']:.1f} s ({done['encoded'] / done['seconds']:.0f} "
          f"items/s), {done['dim']}-d -> {done['path']}")


def cmd_encode_text(args) -> None:
    from gnnrec.encoders.store import inputs_checksum
    from gnnrec.encoders.text import encode_texts, resolve_model

    texts, ids, source, template = encode_inputs(args, args.template)
    manifest = {"modality": args.name, "model": args.model, "resolved_model": resolve_model(args.model),
                "template": template, "source": source, "items": len(texts),
                "inputs_sha256": inputs_checksum(texts), "normalized": True}
    if args.items:
        manifest["item_ids"] = f"ascending ids {ids[0]}..{ids[-1]} of {args.items}"
    def run(resume):
        from gnnrec.encoders.text import load_sentence_model

        model = load_sentence_model(args.model, args.device)
        return resume(lambda a, b: encode_texts(texts[a:b], model, args.batch_size, progress=True)), {}

    encode_to_store(args, manifest, run)


def clip_manifest(args, **extra) -> dict:
    from gnnrec.encoders.image import architecture

    return {"modality": args.name, "model": f"open_clip:{architecture(args.model, args.model_config)}", "pretrained": args.pretrained,
            "model_config": args.model_config, "normalized": True, **extra}


def cmd_encode_clip_text(args) -> None:
    from gnnrec.encoders.image import encode_clip_texts, load_clip
    from gnnrec.encoders.store import inputs_checksum

    texts, _, source, template = encode_inputs(args, args.template)

    def run(resume):
        device = args.device or "cpu"
        model, _, tokenizer = load_clip(args.model, args.pretrained, args.model_config, device)
        return resume(lambda a, b: encode_clip_texts(texts[a:b], model, tokenizer, args.batch_size, device)), {}

    encode_to_store(args, clip_manifest(args, template=template, source=source, items=len(texts),
                                        inputs_sha256=inputs_checksum(texts)), run)


def cmd_encode_image(args) -> None:
    from gnnrec.encoders.image import fill_problem_rows, image_paths, image_rows, load_clip
    from gnnrec.encoders.store import inputs_checksum

    _, ids, source, _ = encode_inputs(args, None)
    paths = image_paths(args.images, ids)
    stamp = [f"{p.name}:{p.stat().st_size}" if p else "-" for p in paths]

    def run(resume):
        device = args.device or "cpu"
        model, preprocess, _ = load_clip(args.model, args.pretrained, args.model_config, device)
        rows = resume(lambda a, b: image_rows(paths[a:b], model, preprocess, args.batch_size, device))
        features, problems = fill_problem_rows(rows, paths)
        for row, problem in list(problems.items())[:20]:
            print(f"  item {ids[row]}: image {problem}, filled with the mean embedding")
        return features, {"filled_with_mean": {ids[r]: p for r, p in problems.items()}}

    encode_to_store(args, clip_manifest(args, template=f"images in {args.images}", source=source,
                                        items=len(paths), inputs_sha256=inputs_checksum(stamp)), run)


def cmd_encode_captions(args) -> None:
    import csv
    from pathlib import Path

    from gnnrec.encoders.captions import PipelineVLM, caption_images
    from gnnrec.encoders.image import image_paths
    from gnnrec.encoders.store import inputs_checksum
    from gnnrec.encoders.text import embed_with_mean_fill, encode_texts, resolve_model
    from gnnrec.llm.openai_chat import OpenAIChatLM

    _, ids, source, _ = encode_inputs(args, None)
    paths = image_paths(args.images, ids)
    stamp = [f"{p.name}:{p.stat().st_size}" if p else "-" for p in paths]
    prompt = Path(args.prompt).read_text(encoding="utf-8").strip() if args.prompt and Path(args.prompt).is_file() \
        else (args.prompt or None)
    cache = args.cache or str(Path(args.out) / f"{args.name}_captions.jsonl")

    def run(resume):  # captions resume from their answer cache instead
        from gnnrec.encoders.captions import DEFAULT_PROMPT

        options = {"cache": cache, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens}
        if args.backend == "openai":
            lm = OpenAIChatLM(args.vlm, base_url=args.base_url, api_key_env=args.api_key_env, **options)
        else:
            lm = PipelineVLM(args.vlm, device=args.device, **options)
        captions, problems = caption_images(lm, paths, prompt or DEFAULT_PROMPT)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        with open(Path(args.out) / f"{args.name}_captions.csv", "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([["item_id", "caption"], *([i, c or ""] for i, c in zip(ids, captions))])
        for row, problem in list(problems.items())[:20]:
            print(f"  item {ids[row]}: {problem}, filled with the mean embedding")
        features, _ = embed_with_mean_fill(captions, lambda texts: encode_texts(texts, args.text_model))
        return features, {"filled_with_mean": {ids[r]: p for r, p in problems.items()},
                          "captions_generated": lm.stats.generated, "captions_cached": lm.stats.cached}

    manifest = {"modality": args.name, "model": f"{args.backend}:{args.vlm} captions -> {args.text_model}",
                "resolved_model": resolve_model(args.text_model), "template": prompt or "default prompt",
                "source": source, "items": len(paths), "inputs_sha256": inputs_checksum(stamp), "normalized": True}
    encode_to_store(args, manifest, run)


def cmd_compare(args) -> None:
    from pathlib import Path

    from gnnrec.analysis.compare import compare, format_markdown, format_text, parse_metrics, to_json

    result = compare(args.runs, baseline=args.baseline, metrics=parse_metrics(args.metrics))
    print(format_text(result))
    if args.markdown:
        Path(args.markdown).write_text(format_markdown(result), encoding="utf-8")
        print(f"markdown: {args.markdown}")
    if args.json:
        Path(args.json).write_text(to_json(result), encoding="utf-8")
        print(f"json: {args.json}")
    if args.plots:
        from gnnrec.analysis.plots import comparison_plots

        for path in comparison_plots(result, args.plots):
            print(f"plot: {path}")


def cmd_report(args) -> None:
    from gnnrec.analysis.html_report import run_report

    print(f"report: {run_report(args.run, args.out)}")


def cmd_augment(args) -> None:
    from gnnrec.augment import run_augment
    from gnnrec.config import load_config

    report = run_augment(load_config(args.config, list(args.overrides)), args.target)
    llm, made = report["llm"], report["llm_generation"]
    print(f"{args.target}: {llm['generated']} prompts sent to {llm['model']}, {llm['cached']} answered from the cache"
          f" (generated at {made['prompts_per_second']:.2f} prompts/s on {made['device']})")
    print("parse failures: " + ", ".join(f"{k} {v}" for k, v in report["failures"].items()))
    print(f"written: {report['file']}")


def run_arguments(p) -> None:
    """The trained run a command reads, and overrides for it (moved data)."""
    p.add_argument("checkpoint", help="a .ckpt written by gnnrec train, or its run folder")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. data.source=NEW_PLACE for moved data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gnnrec", description="Graph-based multimodal recommendation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a YAML config",
                       description="Train a model; writes config.yaml, metrics.json, checkpoints/ and logs/ "
                                   "into a new run folder under output.dir.")
    p.add_argument("config", nargs="?", help="YAML config (default: built-in defaults, synthetic data)")
    p.add_argument("overrides", nargs="*", help="config overrides such as train.max_epochs=50 model.num_layers=2")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("augment", help="LLM graph augmentation (LLMRec): edges, item attributes, user profiles",
                       description="Run one offline LLM augmentation of the dataset in CONFIG (sections data, llm, "
                                   "augment). edges: one liked and one disliked item per user from augment.base's "
                                   "top candidates; items: attribute texts; users: profile texts (both embedded "
                                   "into the feature store). Answers are cached, so a rerun resumes.")
    p.add_argument("target", choices=["edges", "items", "users"])
    p.add_argument("config", help="YAML config with data, llm and augment sections")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. llm.batch_size=16")
    p.set_defaults(func=cmd_augment)

    p = sub.add_parser("search", help="grid or random hyper-parameter search, selected on validation",
                       description="Train every combination of the config's search.grid (or --random N of them) "
                                   "and write one table of all runs; selection uses validation Recall@20 only.")
    p.add_argument("config", help="YAML config with a search.grid section")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. search.grid.optim.lr=[1e-3,5e-3]")
    p.add_argument("--random", type=int, help="sample this many combinations instead of the whole grid")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("compare", help="runs and searches side by side: seeds pooled, CIs, paired significance",
                       description="One row per setting (config up to seed and output place, seeds pooled): mean "
                                   "and 95% t interval over seeds of each test metric; paired t-test and Wilcoxon "
                                   "signed-rank against --baseline over the same test users (Holm-adjusted across "
                                   "the metrics) with effect size d_z; beyond-accuracy and user-group tables from "
                                   "the runs' test_per_user.npz. Runs of different datasets, protocols or test "
                                   "splits are refused.")
    p.add_argument("runs", nargs="+", help="run folders and/or search folders (all their runs)")
    p.add_argument("--baseline", help="setting label, model name or run folder to test against (default: the first)")
    p.add_argument("--metrics", help="comma-separated test metrics (default recall@20,ndcg@20)")
    p.add_argument("--markdown", help="also write the tables as Markdown to this file")
    p.add_argument("--json", help="also write the full comparison as JSON to this file")
    p.add_argument("--plots", help="write PNG plots (metric bars with CIs, popularity of recommendations) here")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", help="one self-contained HTML page of a run: metrics, groups, plots",
                       description="Write the run's plots into <run>/plots/ and an HTML page (images embedded) "
                                   "with its test and validation metrics, beyond-accuracy values, user-group table "
                                   "and the training curves.")
    p.add_argument("run", help="a run folder written by gnnrec train")
    p.add_argument("--out", help="HTML file (default <run>/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("evaluate", help="full-ranking metrics of a trained checkpoint")
    run_arguments(p)
    p.add_argument("--split", choices=["valid", "test", "both"], default="both")
    p.add_argument("--protocol", choices=["strict", "mmrec"], help="default: the run's eval.protocol")
    p.add_argument("--output", help="also write the metrics as JSON to this file")
    p.add_argument("--per-user", help="write the per-user results here (.npz; with --split both, FILE_valid.npz "
                                      "and FILE_test.npz) instead of the run folder, which gets them only for the "
                                      "run's own protocol")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("ablate", help="modality attribution: metrics with each item modality replaced",
                       description="Re-evaluate a trained multimodal run (valid and test) with each item modality, "
                                   "and all at once, replaced by its mean row or by its rows shuffled across items "
                                   "(trained weights kept; item graphs rebuilt from the replaced features), and "
                                   "report the drop per modality. Writes JSON (default <run>/ablation.json).")
    run_arguments(p)
    p.add_argument("--modes", default="mean,shuffle", help="comma-separated: mean, shuffle (default both)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffling permutations")
    p.add_argument("--retrain", action="store_true",
                   help="also train the run's config again without each modality (runs in <run>/ablate/)")
    p.add_argument("--out", help="JSON file to write (default <run>/ablation.json)")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("recommend", help="top-K unseen items for users, with the dataset's own ids",
                       description="Rank every item for the given users (or --all, into --out) with a trained "
                                   "run and print or write the top K, hiding items the users already have.")
    run_arguments(p)
    p.add_argument("--user", action="append", default=[], help="the dataset's own user id (repeat, or comma-separate)")
    p.add_argument("--all", action="store_true", help="every user (best with --out)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--exclude", choices=["known", "train", "none"], default="known",
                   help="items to leave out: all the user's known interactions (default), train only, or none")
    p.add_argument("--out", help="write a TSV (user, rank, item, score) instead of printing")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("export", help="a run's final embeddings, original ids, known items and ANN index, for serving",
                       description="Write OUT with user_emb.npy and item_emb.npy (float32, one forward pass), the "
                                   "original id maps, the known items (hidden at query time), config, metrics, an "
                                   "optional FAISS index with its measured recall, and manifest.json (sha256 of "
                                   "every file). Only models that score by dot product (not GTE).")
    run_arguments(p)
    p.add_argument("--out", required=True, help="export folder")
    p.add_argument("--index", choices=["exact", "hnsw", "none"], default="hnsw",
                   help="FAISS index over item embeddings (default hnsw); none: exact numpy scoring at query time")
    p.add_argument("--recall-k", type=int, default=20, help="K of the index's recall check against exact scoring")
    p.add_argument("--recall-users", type=int, default=1000, help="users sampled for the recall check")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT when it holds a previous export (never another non-empty folder)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="HTTP service over an export (needs the serve extra)",
                       description="GET /health, POST /recommend {user, k, exclude_seen, items}, POST /similar-items "
                                   "{item, k}; original ids; the export is loaded once at start-up.")
    p.add_argument("export", help="a folder written by gnnrec export")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("expressiveness", help="graph, node and link-level expressiveness next to accuracy",
                       description="Topological closeness on the run's data, node automorphism on its user-item "
                                   "graph (nauty orbits or 1-WL classes), graph isomorphism on a suite of pairs.")
    p.add_argument("target", help="a run folder or checkpoint, or a learning-free model name (gte)")
    p.add_argument("overrides", nargs="*", help="config overrides when TARGET is a model name")
    p.add_argument("--data", default="synthetic", help="dataset when TARGET is a model name")
    p.add_argument("--users", type=int, default=1000, help="users sampled for topological closeness")
    p.add_argument("--pairs", type=int, default=100, help="item pairs sampled per user")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", help="also write the report as JSON")
    p.set_defaults(func=cmd_expressiveness)

    p = sub.add_parser("encode", help="precompute item features offline with modality encoders")
    enc_sub = p.add_subparsers(dest="encode_command", required=True)
    def encode_args(q, name: str, template: bool = True, images: bool = False) -> None:
        q.add_argument("data", nargs="?", help="dataset folder whose item metadata fills the template")
        if images:
            q.add_argument("--images", required=True, help="folder of item images named by item id (e.g. covers/)")
            q.add_argument("--id-field", default="item_id", help="item metadata column with the ids images are named by")
        q.add_argument("--items", help="an 'id,text' table instead of a dataset (e.g. MicroLens-100k_title_en.csv)")
        if template:
            q.add_argument("--template", default="{title}", help="e.g. '{title}. Genres: {class}'")
        q.add_argument("--name", default=name, help=f"modality name (file <name>_feat.npy; default {name})")
        q.add_argument("--out", required=True, help="feature store folder")
        q.add_argument("--batch-size", type=int, default=64)
        q.add_argument("--device", default=None, help="cpu, cuda, ... (default: cpu for CLIP, auto for text)")
        q.add_argument("--format", default="auto")
        q.add_argument("--force", action="store_true", help="encode even if the store is current")
        q.add_argument("--preset", help="a YAML file of option values (see encoders/); options given here win")

    def clip_args(q) -> None:
        q.add_argument("--model", help="open_clip architecture (default ViT-B-32, or the --model-config file's)")
        q.add_argument("--pretrained", help="open_clip pretrained tag or local checkpoint (none: random weights)")
        q.add_argument("--model-config", help="JSON architecture file to register (custom or small models)")

    q = enc_sub.add_parser("text", help="sentence-transformers embeddings of item texts",
                           description="Embed a text per item (a template over the dataset's item metadata, or an "
                                       "'id,text' table) and store <name>_feat.npy with a manifest in --out. "
                                       "Train on it with data.feature_dirs=[OUT].")
    encode_args(q, "text")
    q.add_argument("--model", default="all-MiniLM-L6-v2", help="sentence-transformers name or local folder")
    q.set_defaults(func=cmd_encode_text)
    q = enc_sub.add_parser("image", help="open_clip embeddings of item images",
                           description="Embed each item's image (<id>.jpg/.png/... in --images, ids from the "
                                       "dataset's --id-field or an --items table) with open_clip. Missing or "
                                       "unreadable images are listed and filled with the mean embedding.")
    encode_args(q, "image", template=False, images=True)
    clip_args(q)
    q.set_defaults(func=cmd_encode_image)
    q = enc_sub.add_parser("captions", help="MLLM captions of item images, embedded as a text modality",
                           description="Describe each item image with a vision-language model (a transformers "
                                       "image-text-to-text model, or an OpenAI-compatible endpoint), cache the "
                                       "answers (JSONL, so a rerun resumes), write <name>_captions.csv and embed "
                                       "the captions with the text encoder into <name>_feat.npy.")
    encode_args(q, "captions", template=False, images=True)
    q.add_argument("--backend", choices=["transformers", "openai"], default="transformers")
    q.add_argument("--vlm", required=True, help="vision-language model: hub name or local folder (transformers), "
                                                "or the served model name (openai)")
    q.add_argument("--base-url", default="http://localhost:8000/v1", help="OpenAI-compatible endpoint")
    q.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    q.add_argument("--prompt", help="the instruction, or a file holding it (default: describe what you see)")
    q.add_argument("--max-new-tokens", type=int, default=96)
    q.add_argument("--cache", help="JSONL answer cache (default <out>/<name>_captions.jsonl)")
    q.add_argument("--text-model", default="all-MiniLM-L6-v2", help="sentence-transformers model for the captions")
    q.set_defaults(func=cmd_encode_captions)
    q = enc_sub.add_parser("clip-text", help="open_clip text embeddings (same space as the image embeddings)")
    encode_args(q, "clip_text")
    clip_args(q)
    q.set_defaults(func=cmd_encode_clip_text)

    p = sub.add_parser("graph", help="item-item graph tools")
    graph_sub = p.add_subparsers(dest="graph_command", required=True)
    q = graph_sub.add_parser("build", help="build (and cache) the fused kNN item graph of a dataset's features",
                             description="Cosine top-k per item and modality in row blocks (never items x items), "
                                         "normalised and fused; cached under a hash of the features and parameters.")
    q.add_argument("data", help="dataset folder (or 'synthetic')")
    q.add_argument("--k", type=int, default=10)
    q.add_argument("--weights", help="per-modality weights summing to 1, e.g. image=0.1,text=0.9 (default: equal)")
    q.add_argument("--weighted", action="store_true", help="keep cosine weights instead of binarising")
    q.add_argument("--no-self", action="store_true", help="leave each item out of its own neighbours")
    q.add_argument("--cache-dir", default="datasets/data/cache", help="graph cache folder ('' to disable)")
    q.add_argument("--out", help="also save the graph as a scipy .npz")
    q.add_argument("--backend", choices=["exact", "faiss", "faiss-hnsw"], default="exact",
                   help="exact block-wise top-k (default), FAISS exact, or FAISS HNSW (approximate, for millions)")
    q.add_argument("--precision", choices=["float32", "bf16"], default="float32",
                   help="exact backend: bf16 picks candidates from bfloat16 products, then re-ranks them in float32 "
                        "(same neighbours; faster only where the CPU/GPU has bf16 matrix units)")
    q.set_defaults(func=cmd_graph_build)

    p = sub.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("info", help="print the statistics of a dataset folder (or 'synthetic')")
    q.add_argument("path")
    q.add_argument("overrides", nargs="*", help="data settings as for train, e.g. format=lightgcn (data. optional)")
    q.add_argument("--format", help="same as format=...: auto, mmrec, lightgcn, pickle, lattice, recbole or table")
    q.add_argument("--json", action="store_true")
    q.add_argument("--card", help="a dataset card (datasets/NAME.yaml) to check the files and statistics against")
    q.set_defaults(func=cmd_data_info)
    q = data_sub.add_parser("download", help="fetch a dataset's files from the addresses on its card, checked",
                            description="Download the files a dataset card lists under 'download' into --out and "
                                        "verify their sha256 against the card.")
    q.add_argument("card", help="a dataset card, e.g. datasets/microlens-100k.yaml")
    q.add_argument("--out", required=True)
    q.add_argument("--timeout", type=float, default=30.0)
    q.set_defaults(func=cmd_data_download)
    q = data_sub.add_parser("ingest", help="raw Amazon reviews or MicroLens files -> an MMRec-format folder",
                            description="Parse, drop duplicate interactions (latest kept), k-core filter, split "
                                        "with MMRec's rule and write <name>.inter, the id mappings, items.tsv and "
                                        "ingest_report.json (malformed lines are counted there and logged).")
    q.add_argument("source", choices=["amazon", "microlens"])
    q.add_argument("path", help="amazon: the reviews file (.json/.jsonl, .gz ok); microlens: the dataset folder")
    q.add_argument("--meta", help="amazon: the metadata file (meta_*.json(l)(.gz))")
    q.add_argument("--out", required=True, help="output folder (train on it with data.source=OUT)")
    q.add_argument("--name", help="dataset name (default from the file or folder name)")
    q.add_argument("--kcore", type=int, default=None, help="k-core filter (default 5 for amazon, none for microlens)")
    q.add_argument("--strict", action="store_true", help="stop at the first malformed line instead of skipping it")
    q.set_defaults(func=cmd_data_ingest)
    q = data_sub.add_parser("convert", help="write any readable dataset out in MMRec format (for other tools)",
                            description="Read SOURCE as `gnnrec train` would (same key=value data settings: "
                                        "format=, name=, columns=, kcore=, valid_ratio=, ...) and write <name>.inter "
                                        "(userID, itemID, x_label), <modality>_feat.npy, u_id_mapping.csv / "
                                        "i_id_mapping.csv (original ids) and items.tsv / users.tsv to --out.")
    q.add_argument("source", help="dataset file or folder (or 'synthetic')")
    q.add_argument("--out", required=True, help="output folder")
    q.add_argument("--name", help="dataset name, i.e. <name>.inter (default: the dataset's)")
    q.add_argument("overrides", nargs="*", help="data settings, e.g. format=table columns.user=uid valid_ratio=0")
    q.set_defaults(func=cmd_data_convert)
    return parser


def with_preset(parser, argv: list[str]) -> list[str]:
    """``argv`` with the options of its ``--preset`` YAML file inserted before the user's own (which win)."""
    import yaml

    path = argv[argv.index("--preset") + 1] if "--preset" in argv[:-1] else None
    if path is None:
        return argv
    try:
        values = yaml.safe_load(open(path, encoding="utf-8"))
    except OSError as exc:
        raise GnnrecError(f"preset {path}: {exc.strerror}") from None
    if not isinstance(values, dict):
        raise GnnrecError(f"preset {path}: expected a mapping of option names to values")
    extra = []
    for key, value in values.items():
        flag = "--" + str(key).replace("_", "-")
        extra += [flag] if value is True else [] if value in (False, None) else [flag, str(value)]
    head = [a for a in argv[:2] if not a.startswith("-")]
    full = [*head, *extra, *argv[len(head):]]
    _, unknown = parser.parse_known_args(full)
    bad = [u for u in unknown if u in extra]
    if bad:
        raise GnnrecError(f"preset {path}: unknown option(s) {', '.join(bad)} for `gnnrec {' '.join(head)}`")
    return full


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = with_preset(parser, argv)
    except GnnrecError as exc:
        print(f"gnnrec: error: {exc}", file=sys.stderr)
        return 2
    args, extra = parser.parse_known_args(argv)
    if extra:  # overrides given after options (`search CONFIG --random 2 key=value`) are overrides all the same
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler = logging.StreamHandler()  # gnnrec's own logger only: Lightning has its handler already
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("gnnrec")
    if not logger.handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        args.func(args)
    except GnnrecError as exc:
        print(f"gnnrec: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except OSError as exc:  # a path that cannot be written or read (a missing folder, a file in the way, rights)
        if args.verbose:
            raise
        print(f"gnnrec: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
