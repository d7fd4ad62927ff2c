"""Real-dataset indexers, `fasbench data check` and the real-data protocols, on tiny fake
copies of MSU-MFSD, CASIA-FASD, Replay-Attack, OULU-NPU and CelebA-Spoof built on the fly
in their official directory structure and file naming."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
skimage_data = pytest.importorskip("skimage.data")

SIZE = 160
N_FRAMES = 8


def _face_image() -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(skimage_data.astronaut())  # a real face (ships inside scikit-image)
    return np.asarray(img.resize((SIZE, SIZE), Image.BILINEAR))


_FACE = None


def video_frames(kind: str, seed: int = 0) -> list[np.ndarray]:
    """8 frames: ``face`` (every frame), ``half`` (faces, then a last frame without one),
    ``none`` (no face anywhere)."""
    global _FACE
    if _FACE is None:
        _FACE = _face_image()
    rng = np.random.default_rng(seed)
    blank = np.full((SIZE, SIZE, 3), 90, np.uint8) + rng.integers(0, 20, (SIZE, SIZE, 3), dtype=np.uint8)
    out = []
    for k in range(N_FRAMES):
        has_face = kind == "face" or (kind == "half" and k < N_FRAMES - 1)
        out.append(np.roll(_FACE, (k % 3) - 1, axis=1).copy() if has_face else blank)
    return out


def write_video(path: Path, kind: str = "face", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 2_000_000
        for f in video_frames(kind, seed):
            for pkt in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return path


def write_list(path: Path, lines: list[str]) -> None:
    """As official list files often ship: CRLF line ends, no final newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\r\n".join(lines).encode())


def make_msu(root: Path, corrupt: bool = False) -> Path:
    """Clients 2 (train) and 1 (test), both devices, live + 3 attacks: 16 videos."""
    for client in (1, 2):
        for device, ext in (("android", "mp4"), ("laptop", "mov")):
            kind = "half" if device == "laptop" else "face"
            write_video(root / "scene01" / "real" / f"real_client{client:03d}_{device}_SD_scene01.{ext}", kind, client)
            for att in ("ipad_video", "iphone_video", "printed_photo"):
                write_video(root / "scene01" / "attack" / f"attack_client{client:03d}_{device}_SD_{att}_scene01.{ext}",
                            "none" if (client, device, att) == (2, "laptop", "printed_photo") else "face", client)
    write_list(root / "train_sub_list.txt", ["02"])
    write_list(root / "test_sub_list.txt", ["01"])
    if corrupt:
        (root / "scene01" / "real" / "real_client001_laptop_SD_scene01.mov").write_bytes(b"\x00not a video" * 50)
    return root


def make_casia(root: Path) -> Path:
    for folder, names in (("train_release", ("1", "2", "HR_1", "3")), ("test_release", ("1", "5", "7", "HR_4"))):
        for name in names:
            write_video(root / folder / "1" / f"{name}.avi")
    return root


def make_replay(root: Path) -> Path:
    for folder, client in (("train", 1), ("devel", 3), ("test", 2)):
        write_video(root / folder / "real" / f"client{client:03d}_session01_webcam_authenticate_adverse_1.mov")
        write_video(root / folder / "real" / f"client{client:03d}_session01_webcam_authenticate_controlled_1.mov")
        for support, name in (("fixed", f"attack_print_client{client:03d}_session01_highdef_photo_adverse"),
                              ("hand", f"attack_highdef_client{client:03d}_session01_highdef_photo_controlled"),
                              ("hand", f"attack_mobile_client{client:03d}_session01_mobile_video_adverse")):
            write_video(root / folder / "attack" / support / f"{name}.mov")
    write_video(root / "enroll" / "client001_session01_webcam_enroll_adverse.mov")
    return root


OULU_USERS = {"Train_files": "01", "Dev_files": "21", "Test_files": "36"}


def make_oulu(root: Path, protocols: bool = True) -> Path:
    for folder, user in OULU_USERS.items():
        for session in ((3,) if folder == "Test_files" else (1,)):
            for f in range(1, 6):
                write_video(root / folder / f"1_{session}_{user}_{f}.avi")
                (root / folder / f"1_{session}_{user}_{f}.txt").write_text("0, 60, 50, 100, 50\n")  # eye positions
    if protocols:
        def lines(user, sessions, files):
            return [f"{'+1' if f == 1 else '-1'},1_{s}_{user}_{f}" for s in sessions for f in files]

        p = root / "Protocols"
        write_list(p / "Protocol_1" / "Train.txt", lines("01", (1,), range(1, 6)))
        write_list(p / "Protocol_1" / "Dev.txt", lines("21", (1,), range(1, 6)))
        write_list(p / "Protocol_1" / "Test.txt", lines("36", (3,), range(1, 6)))
        write_list(p / "Protocol_2" / "Train.txt", lines("01", (1,), (1, 2, 4)))
        write_list(p / "Protocol_2" / "Dev.txt", lines("21", (1,), (1, 2, 4)))
        write_list(p / "Protocol_2" / "Test.txt", lines("36", (3,), (1, 3, 5)))
    return root


def make_celeba(root: Path) -> Path:
    from PIL import Image

    labels = {"train": {}, "test": {}}
    face = _face_image()
    for split, subject in (("train", "10"), ("test", "20")):
        for kind, spoof_type in (("live", 0), ("spoof", 1), ("spoof", 8)):
            rel = f"Data/{split}/{subject}/{kind}/{len(labels[split]) + 1:06d}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(face).save(root / rel, quality=95)
            vec = [0] * 44
            vec[40], vec[43] = spoof_type, 0 if kind == "live" else 1
            labels[split][rel] = vec
    (root / "metas" / "intra_test").mkdir(parents=True)
    for split, d in labels.items():
        (root / "metas" / "intra_test" / f"{split}_label.json").write_text(json.dumps(d))
    return root


@pytest.fixture(scope="session")
def fake_roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("fake-datasets")
    return {"M": make_msu(base / "MSU-MFSD", corrupt=True), "C": make_casia(base / "CASIA-FASD"),
            "I": make_replay(base / "replayattack"), "O": make_oulu(base / "Oulu_NPU"),
            "A": make_celeba(base / "CelebA_Spoof")}


def _no_user_roots(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("FASBENCH_CONFIG", str(tmp_path / "no-config.yaml"))
    for k in list(__import__("os").environ):
        if k.startswith("FASBENCH_ROOT_"):
            monkeypatch.delenv(k)


# --- indexers: counts, labels, attack types, splits -------------------------------------

def test_msu_index(fake_roots):
    from fasbench.data import indexers

    res = indexers.index("msu_mfsd", fake_roots["M"], progress=False)
    v = res.videos.set_index("video_id")
    assert indexers.counts(res.videos) == {
        "videos": 16, "live": 4, "spoof": 12, "splits": {"test": 8, "train": 8},
        "attacks": {"ipad_video": 4, "iphone_video": 4, "printed_photo": 4}, "subjects": 2}
    # subject split from train_sub_list.txt / test_sub_list.txt (CRLF, no final newline)
    assert v.loc["real_client002_android_SD_scene01", "split"] == "train"
    assert v.loc["attack_client001_laptop_SD_printed_photo_scene01", ["split", "label", "attack", "device"]].tolist() == \
        ["test", 0, "print", "laptop"]
    assert v.loc["attack_client001_android_SD_ipad_video_scene01", "attack"] == "replay"
    assert v.loc["real_client002_laptop_SD_scene01", ["label", "attack", "n_frames", "path"]].tolist() == \
        [1, "none", 8, "scene01/real/real_client002_laptop_SD_scene01.mov"]
    bad = v.loc["real_client001_laptop_SD_scene01"]
    assert bad["n_frames"] == 0 and "Invalid data" in bad["error"]  # the corrupt video, reported not dropped


def test_casia_index(fake_roots):
    from fasbench.data import indexers

    res = indexers.index("C", fake_roots["C"], progress=False)
    v = res.videos.set_index("video_id")
    assert indexers.counts(res.videos)["splits"] == {"test": 4, "train": 4}
    assert v.loc[["train_release/1/1", "train_release/1/2", "train_release/1/HR_1"], "label"].tolist() == [1, 1, 1]
    assert v.loc["train_release/1/3", ["label", "attack_type", "attack", "quality"]].tolist() == \
        [0, "warped_photo", "print", "normal"]
    assert v.loc["test_release/1/5", ["attack_type", "attack"]].tolist() == ["cut_photo", "print"]
    assert v.loc["test_release/1/HR_4", ["attack_type", "attack", "quality"]].tolist() == ["video_replay", "replay", "high"]
    assert v.loc["train_release/1/1", "subject"] == "s01" and v.loc["test_release/1/1", "subject"] == "s21"


def test_replay_index(fake_roots):
    from fasbench.data import indexers

    res = indexers.index("replay_attack", fake_roots["I"], progress=False)
    c = indexers.counts(res.videos)
    assert res.excluded == {"enroll": 1} and c["videos"] == 15  # enroll videos are not part of the PAD protocol
    assert c["splits"] == {"dev": 5, "test": 5, "train": 5} and c["attacks"] == {"photo": 3, "print": 3, "video": 3}
    v = res.videos.set_index("video_id")
    row = v.loc["train/attack/fixed/attack_print_client001_session01_highdef_photo_adverse"]
    assert row[["label", "attack_type", "attack", "support", "quality", "subject"]].tolist() == \
        [0, "print", "print", "fixed", "print", "client001"]
    row = v.loc["devel/attack/hand/attack_mobile_client003_session01_mobile_video_adverse"]
    assert row[["split", "attack_type", "attack", "support", "quality"]].tolist() == ["dev", "video", "replay", "hand", "mobile"]
    assert v.loc["test/real/client002_session01_webcam_authenticate_controlled_1", ["label", "light"]].tolist() == \
        [1, "controlled"]


def test_oulu_index_and_protocol_lists(fake_roots):
    from fasbench.data import indexers

    res = indexers.index("O", fake_roots["O"], progress=False)
    v = res.videos.set_index("video_id")
    c = indexers.counts(res.videos)
    assert c["live"] == 3 and c["spoof"] == 12 and c["splits"] == {"dev": 5, "test": 5, "train": 5}
    assert c["attacks"] == {"print1": 3, "print2": 3, "replay1": 3, "replay2": 3}
    assert v.loc["1_3_36_4", ["split", "label", "attack", "phone", "session", "subject"]].tolist() == \
        ["test", 0, "replay", 1, 3, "user36"]
    # the official lists (CRLF, no final newline) become per-protocol split columns
    assert v.loc["1_1_01_3", "oulu_p1"] == "train" and v.loc["1_1_01_3", "oulu_p2"] == ""
    assert v.loc["1_3_36_3", "oulu_p2"] == "test" and v.loc["1_3_36_2", "oulu_p2"] == ""
    assert (res.videos["oulu_p1"] != "").sum() == 15
    assert "oulu_p3_1" not in res.videos and any("Protocol_3" in n for n in res.notes)


def test_oulu_list_that_contradicts_the_file_names(tmp_path):
    from fasbench.data import indexers
    from fasbench.errors import FasbenchError

    root = make_oulu(tmp_path / "oulu", protocols=False)
    for s in ("Train", "Dev", "Test"):
        write_list(root / "Protocols" / "Protocol_1" / f"{s}.txt", ["+1,1_1_01_2"])  # file 2 is a print attack
    with pytest.raises(FasbenchError, match=r"1_1_01_2.*file 1 is the only live"):
        indexers.index("O", root, probe=False)


def test_celeba_spoof_index(fake_roots):
    from fasbench.data import indexers

    res = indexers.index("celeba_spoof", fake_roots["A"], progress=False)
    c = indexers.counts(res.videos)
    assert c == {"videos": 6, "live": 2, "spoof": 4, "splits": {"test": 3, "train": 3},
                 "attacks": {"pad": 2, "photo": 2}, "subjects": 2}
    assert set(res.videos["attack"]) == {"none", "print", "replay"} and set(res.videos["n_frames"]) == {1}


def test_missing_layout_is_a_clear_error(tmp_path):
    from fasbench.data import indexers
    from fasbench.errors import FasbenchError

    (tmp_path / "x").mkdir()
    with pytest.raises(FasbenchError, match=r"scene01 does not exist.*official layout"):
        indexers.index("M", tmp_path / "x", probe=False)
    with pytest.raises(FasbenchError, match=r"unknown real dataset 'msu'.*msu_mfsd"):
        indexers.spec("msu")


# --- fasbench data check ------------------------------------------------------------------

def test_data_check_json(run_cli, fake_roots, tmp_path):
    proc = run_cli("data", "check", "replay_attack", "--json", env={"FASBENCH_ROOT_I": str(fake_roots["I"]),
                                                                  "FASBENCH_CONFIG": str(tmp_path / "none.yaml")})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {k: out[k] for k in ("videos", "live", "spoof", "splits", "attacks")} == {
        "videos": 15, "live": 6, "spoof": 9, "splits": {"dev": 5, "test": 5, "train": 5},
        "attacks": {"photo": 3, "print": 3, "video": 3}}
    assert out["official"]["videos"] == 1200 and out["excluded"] == {"enroll": 1}
    assert {"what": "videos", "found": 15, "official": 1200, "ok": False} in out["differences"]


def test_data_check_text_compares_with_official_counts(run_cli, fake_roots, tmp_path):
    root = tmp_path / "msu"
    import shutil

    shutil.copytree(fake_roots["M"], root)
    write_video(root / "scene01" / "real" / "real_clientXX_phone_SD_scene01.mp4")  # breaks the naming
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"roots:\n  msu_mfsd: {root}\n")  # the user config file
    proc = run_cli("data", "check", "M", "--probe", "--no-progress", env={"FASBENCH_CONFIG": str(cfg)})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"at {root} (user config {cfg})" in out
    lines = {ln.split()[0] + " " + ln.split()[1] if ln.startswith(("split", "attack")) else ln.split()[0]: ln.split()
             for ln in out.splitlines() if ln.strip()}
    assert lines["videos"][1:4] == ["16", "280", "DIFFERS"]
    assert lines["split train"][2:5] == ["8", "120", "DIFFERS"]
    assert lines["attack printed_photo"][2:5] == ["4", "70", "DIFFERS"]
    assert "real_clientXX_phone_SD_scene01.mp4" in out and "do not follow the official naming" in out
    assert "unreadable: scene01/real/real_client001_laptop_SD_scene01.mov" in out
    assert "count(s) differ from the official ones" in out


def test_data_check_without_root(run_cli, one_line_error, tmp_path):
    line = one_line_error(run_cli("data", "check", "oulu_npu", env={"FASBENCH_CONFIG": str(tmp_path / "none.yaml")}))
    assert "O (oulu_npu)" in line and "--root PATH" in line and "FASBENCH_ROOT_O" in line


def test_run_real_without_roots_names_them(run_cli, one_line_error, tmp_path):
    line = one_line_error(run_cli("run", "erm", "--protocol", "MICO", "--data", "real", "--no-progress",
                                  env={"FASBENCH_CONFIG": str(tmp_path / "none.yaml")}))
    assert "protocol MICO needs the dataset root(s) of M (msu_mfsd), C (casia_fasd), I (replay_attack), O (oulu_npu)" in line
    assert "data.roots.M=" in line and "FASBENCH_ROOT_M" in line and "--data synthetic" in line
    assert "docs/datasets.md" in line


def test_roots_precedence(monkeypatch, tmp_path):
    from fasbench.data import roots

    _no_user_roots(monkeypatch, tmp_path)
    assert roots.resolve("M") == (None, "")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("roots:\n  M: /from/file\n")
    monkeypatch.setenv("FASBENCH_CONFIG", str(cfg))
    assert roots.resolve("M") == (Path("/from/file"), f"user config {cfg}")
    monkeypatch.setenv("FASBENCH_ROOT_MSU_MFSD", "/from/env")
    assert roots.resolve("M")[0] == Path("/from/env")
    assert roots.resolve("M", {"M": "/from/cfg"})[0] == Path("/from/cfg")
    assert roots.resolve("M", {"M": "/from/cfg"}, explicit="/cli")[0] == Path("/cli")
    assert roots.configured() == {"M": Path("/from/env")}


def test_config_entries_of_the_registered_datasets():
    """Each registered real dataset's `--data` entry is RealDataOptions' defaults + its letter, and every
    registered letter and name is a data.roots key (so `data.roots.msu_mfsd=` is accepted)."""
    from fasbench import config

    cfg = config.compose(["method=erm", "data=real", "data.roots.msu_mfsd=/m", "data.roots.C=/c"])
    assert (cfg.data.name, cfg.data.domains, cfg.data.roots.msu_mfsd, cfg.data.roots.C) == ("real", None, "/m", "/c")
    assert set(cfg.data.roots) >= {"M", "msu_mfsd", "C", "casia_fasd", "I", "replay_attack", "O", "oulu_npu",
                                   "A", "celeba_spoof"}
    cfg = config.compose(["method=erm", "data=oulu_npu", "data.preprocess.size=240"])
    assert (cfg.data.name, list(cfg.data.domains), cfg.data.crop_size, cfg.data.preprocess.size) == ("oulu_npu", ["O"], 224, 240)


# --- split conventions and the protocols that choose their own rows -----------------------

def _toy_manifest():
    import pandas as pd

    rows = []
    for ds, dom, splits in (("msu_mfsd", "M", ("train", "test")), ("replay_attack", "I", ("train", "dev", "test"))):
        for split in splits:
            for s in range(10):
                for label, attack in ((1, "none"), (0, "print"), (0, "replay")):
                    rows.append({"dataset": ds, "domain": dom, "video_id": f"{split}{s}{attack}", "subject": f"{dom}-{split}{s}",
                                 "split": split, "official_split": split, "label": label, "attack": attack,
                                 "path": "p", "frame": 0})
    return pd.DataFrame(rows)


def test_convention_splits():
    from fasbench.data.real_dataset import convention_splits

    m = _toy_manifest()
    whole = convention_splits(m, "whole", 0.2)
    assert set(whole[m["official_split"] == "dev"]) == {"unused"}  # SSDG leaves Replay/OULU devel out
    assert set(whole[m["official_split"] != "dev"]) == {"train", "dev"}
    for ds in ("msu_mfsd", "replay_attack"):  # 20% of the subjects of each dataset, whole subjects
        sel = (m["dataset"] == ds) & (whole == "dev")
        assert m.loc[sel, "subject"].nunique() == 4 and sel.sum() == 12
    assert not (set(m.loc[whole == "dev", "subject"]) & set(m.loc[whole == "train", "subject"]))
    off = convention_splits(m, "official", 0.2)
    assert set(off[m["official_split"] == "test"]) == {"test"} and set(off[m["official_split"] == "dev"]) == {"unused"}
    carved = set(m.loc[off == "dev", "subject"])
    assert carved and all(s.split("-")[1].startswith("train") for s in carved)  # carved from the train split only
    assert (convention_splits(m, "official", 0.2) == off).all()  # deterministic


def test_task_view_conventions():
    from fasbench.data.frames import FrameSet
    from fasbench.data.real_dataset import task_view
    from fasbench.protocols import intra, mico

    m = _toy_manifest()
    fs = FrameSet(m, np.zeros((len(m), 4, 4, 3), np.uint8), identity={"split_convention": "official", "val_fraction": 0.2})
    p = mico()
    view, proto, info = task_view(fs, p, p.tasks[0])
    assert info["convention"] == "official" and proto.splits["target"] == ("test",)
    assert set(view.manifest["split"]) == {"train", "dev", "test", "unused"}
    assert set(fs.manifest["split"]) != set(view.manifest["split"])
    fs.identity["split_convention"] = "whole"
    _, proto, info = task_view(fs, p, p.tasks[0])
    assert info["convention"] == "whole" and proto.splits == {"source_train": ("train",), "source_val": ("dev",),
                                                              "target": ("train", "dev")}
    _, proto, info = task_view(fs, intra(), intra().tasks[0])  # intra tasks always run on official splits
    assert info["convention"] == "official" and proto.splits["target"] == ("test",)


def test_cross_attack_assign():
    from fasbench.protocols import cross_attack

    m = _toy_manifest()
    p = cross_attack()
    t = p.task("M->M[unseen-replay]")
    split = p.assign(m, t)
    replay, live = m["attack"] == "replay", m["label"] == 1
    assert set(split[replay & m["split"].isin(["train", "dev"])]) == {"unused"}  # never trained on
    assert set(split[(m["split"] == "test") & replay]) == {"test"} and set(split[(m["split"] == "test") & live]) == {"test"}
    assert set(split[(m["split"] == "test") & (m["attack"] == "print")]) == {"unused"}
    assert set(split[(m["split"] == "train") & (m["attack"] == "print")]) == {"train"}
    assert len(p.tasks) == 8 and [x.name for x in p.tasks[:2]] == ["M->M[unseen-print]", "M->M[unseen-replay]"]


def test_oulu_protocol_needs_lists():
    from fasbench.errors import FasbenchError
    from fasbench.protocols import oulu_npu

    p = oulu_npu()
    assert len(p.tasks) == 14 and p.task("P3_2").name == "O->O[P3_2]"
    m = _toy_manifest()
    with pytest.raises(FasbenchError, match=r"Protocols/Protocol_1/\{Train,Dev,Test\}\.txt"):
        p.assign(m, p.task("P1"))
    m["oulu_p1"] = [["train", "", "dev", "test"][i % 4] for i in range(len(m))]
    assert p.assign(m, p.task("P1")).tolist()[:4] == ["train", "unused", "dev", "test"]


# --- videos without a face: `data prepare` names them, `data check --probe` reports them, --strict fails -----

NO_FACE = "scene01/attack/attack_client002_laptop_SD_printed_photo_scene01.mov"  # make_msu: no face in any frame
UNREADABLE = "scene01/real/real_client001_laptop_SD_scene01.mov"


def test_no_face_videos_from_the_summary_or_the_video_table():
    import pandas as pd

    from fasbench.data.real_dataset import describe_no_face, no_face_videos

    listed = [{"path": "a.avi", "sampled": 2, "no_face": 2, "fallback": "center"}]
    assert no_face_videos({"no_face_videos": listed}) == listed
    # an entry of older code kept a count there: worked out from videos.csv (no face in most sampled frames)
    videos = pd.DataFrame({"path": ["a.avi", "b.avi", "c.avi"], "slots": [2, 2, 3], "no_face": [2, 1, 2],
                           "fallback": ["center", "nearest", "nearest"]})
    assert [v["path"] for v in no_face_videos({"no_face_videos": 3}, videos)] == ["a.avi", "c.avi"]
    assert describe_no_face(listed[0]) == "a.avi: no face in 2/2 sampled frames (fallback: center)"
    assert describe_no_face({"path": "d.avi", "sampled": [6, 7], "no_face": 1, "fallback": ""}) == \
        "d.avi: no face in 1/2 sampled frames"


def _strict_lines(proc) -> list[str]:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("strict: ")]
    assert "Traceback" not in proc.stderr
    return lines


def test_prepare_and_check_report_videos_without_a_face(run_cli, fake_roots, tmp_path):
    pytest.importorskip("facenet_pytorch")
    env = {"FASBENCH_CONFIG": str(tmp_path / "none.yaml"), "FASBENCH_CACHE": str(tmp_path / "cache")}
    root = str(fake_roots["M"])
    # nothing prepared yet: check --probe says so (and how to get the report)
    proc = run_cli("data", "check", "M", "--root", root, "--probe", "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "frame cache: not prepared yet" in proc.stdout and "`fasbench data prepare msu_mfsd`" in proc.stdout
    proc = run_cli("data", "check", "M", "--root", root, "--probe", "--json", "--no-progress", env=env)
    assert json.loads(proc.stdout)["prepared"]["status"] == "not prepared yet"

    proc = run_cli("data", "prepare", "M", "--root", root, "--no-progress", "--workers", "1", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("msu_mfsd: prepared 15/16 videos, 30 frames, 27 with a face, 3 without")
    entry = out.split("cache: ")[1].split()[0]
    assert "1 video(s) flagged: no face found in most sampled frames" in out
    assert f"no_face_videos in {entry}/summary.json" in out and "`fasbench data preview msu_mfsd`" in out
    assert f"    {NO_FACE}: no face in 2/2 sampled frames (fallback: center)" in out
    summary = json.loads((Path(entry) / "summary.json").read_text())
    if isinstance(summary["no_face_videos"], list):  # the preparation's own list (else worked out from videos.csv)
        assert [v["path"] for v in summary["no_face_videos"]] == [NO_FACE]

    # --json prints the summary, flagged videos included
    proc = run_cli("data", "prepare", "M", "--root", root, "--json", "--no-progress", env=env)
    s = json.loads(proc.stdout)
    assert proc.returncode == 0 and s["reused"] is True and s["waited"] is False and s["cache"] == entry
    assert s["no_face_videos"] == summary["no_face_videos"]
    # the text of a second run says it reused the cache, and still names the flagged video
    proc = run_cli("data", "prepare", "M", "--root", root, "--no-progress", env=env)
    assert proc.stdout.startswith("msu_mfsd: reused the prepared frame cache, 15/16 videos") and NO_FACE in proc.stdout

    # check --probe reads the prepared entry
    proc = run_cli("data", "check", "M", "--root", root, "--probe", "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"frame cache: {entry}: 1 video(s) flagged, no face in most sampled frames" in proc.stdout
    assert f"  {NO_FACE}: no face in 2/2 sampled frames (fallback: center)" in proc.stdout
    proc = run_cli("data", "check", "M", "--root", root, "--probe", "--json", "--no-progress", env=env)
    got = json.loads(proc.stdout)["prepared"]
    assert got["status"] == "prepared" and got["cache"] == entry
    assert [(v["path"], v["no_face"]) for v in got["no_face_videos"]] == [(NO_FACE, 2)]

    # --strict: one line per problem, exit 1 (9 counts differ from the official ones, one unreadable, one flagged)
    proc = run_cli("data", "check", "M", "--root", root, "--probe", "--strict", "--no-progress", env=env)
    lines = _strict_lines(proc)
    assert proc.returncode == 1 and len(lines) == 11, proc.stderr
    assert "strict: msu_mfsd: videos 16 found, official 280" in lines
    assert f"strict: msu_mfsd: flagged {NO_FACE}: no face in 2/2 sampled frames (fallback: center)" in lines
    assert any(ln.startswith(f"strict: msu_mfsd: unreadable {UNREADABLE}: ") for ln in lines)
    proc = run_cli("data", "check", "M", "--root", root, "--strict", "--json", env=env)  # counts only without --probe
    assert proc.returncode == 1 and len(_strict_lines(proc)) == 9 and json.loads(proc.stdout)["videos"] == 16
    proc = run_cli("data", "prepare", "M", "--root", root, "--strict", "--json", "--no-progress", env=env)
    lines = _strict_lines(proc)
    assert proc.returncode == 1 and len(lines) == 11 and json.loads(proc.stdout)["prepared"] == 15
    assert f"strict: msu_mfsd: flagged {NO_FACE}: no face in 2/2 sampled frames (fallback: center)" in lines
    assert any(ln.startswith(f"strict: msu_mfsd: skipped {UNREADABLE}: ") for ln in lines)

    # the list comes from the preparation summary: a summary naming other videos is what gets reported
    listed = [{"path": "scene01/real/x.mov", "sampled": 2, "no_face": 2, "fallback": "center"},
              {"path": "scene01/attack/y.mov", "sampled": 2, "no_face": 2, "fallback": "nearest"}]
    (Path(entry) / "summary.json").write_text(json.dumps({**summary, "no_face_videos": listed}))
    proc = run_cli("data", "check", "M", "--root", root, "--probe", "--json", "--strict", "--no-progress", env=env)
    assert json.loads(proc.stdout)["prepared"]["no_face_videos"] == listed
    lines = _strict_lines(proc)
    assert proc.returncode == 1 and [ln for ln in lines if "flagged" in ln] == [
        "strict: msu_mfsd: flagged scene01/real/x.mov: no face in 2/2 sampled frames (fallback: center)",
        "strict: msu_mfsd: flagged scene01/attack/y.mov: no face in 2/2 sampled frames (fallback: nearest)"]
    proc = run_cli("data", "prepare", "M", "--root", root, "--no-progress", env=env)
    assert proc.returncode == 0 and "2 video(s) flagged" in proc.stdout and "scene01/attack/y.mov" in proc.stdout
