"""Hook implementations of fasbench-dtda (lazy: importing this module imports no torch)."""
from __future__ import annotations

import copy

from fasbench.hookspecs import hookimpl

#: DAA defaults (our choices; see the plugin README): one FGSM-style step of the full budget
#: eps = 8/255 towards the domain classifier's maximum uncertainty, from the clean image.
DAA = {
    "name": "dtda.daa",
    "epsilon": 0.031372549,  # 8/255, in 0..1 pixel units
    "step_size": 0.031372549,  # = epsilon with one step
    "steps": 1,
    "init": "zero",  # zero | uniform
    "objective": "uniform",  # uniform (maximum uncertainty) | untargeted (away from the true domain)
    "feature": "pooled",
    "hidden": 256,
    "dropout": 0.0,
    "weight": 1.0,  # weight of the domain classifier's own loss (it sees detached features)
}
PERCEPTUAL = {
    "name": "dtda.arcface", "weights": "auto", "arch": None, "weight": 1.0, "loss": "cosine",
    "student_feature": "pooled", "teacher_feature": "embedding",
}
GENERATIVE = {
    "name": "dtda.ldm_vq", "weights": "auto", "arch": None, "input_size": None, "weight": 1.0, "loss": "cosine",
    "student_feature": "stage3", "teacher_feature": "mid",
}


def _recipe(perceptual: bool, generative: bool, daa: bool) -> dict:
    return copy.deepcopy({
        "ce_weight": 1.0,
        "clean_ce_weight": 0.0,
        "teachers": {
            "perceptual": {"enabled": perceptual, **PERCEPTUAL},
            "generative": {"enabled": generative, **GENERATIVE},
        },
        "aligner": DAA if daa else {"name": "none"},
    })


RECIPES = {
    "dtda": ((True, True, True), "DTDA: dual teachers (ArcFace + LDM VQ encoder) + domain adversarial attack"),
    "dtda-no-daa": ((True, True, False), "DTDA ablation: both teachers, no domain alignment"),
    "dtda-perceptual": ((True, False, True), "DTDA ablation: perceptual teacher only + DAA"),
    "dtda-generative": ((False, True, True), "DTDA ablation: generative teacher only + DAA"),
    "daa": ((False, False, True), "Domain adversarial attack only (ERM on DAA-perturbed images)"),
}


@hookimpl
def register_teachers(register):
    register("dtda.arcface", "fasbench_dtda.teachers:ArcFaceTeacher", version=1, kind="perceptual",
             description="ArcFace IResNet face recognition (CVLFace IR-101 WebFace4M; synthetic: pretrained here)",
             weights="hf-hub:minchul/cvlface_arcface_ir101_webface4m")
    register("dtda.ldm_vq", "fasbench_dtda.teachers:LdmVQTeacher", version=1, kind="generative",
             description="VQ-VAE encoder of latent diffusion on CelebA-HQ (CompVis/ldm-celebahq-256; synthetic: pretrained here)",
             weights="hf-hub:CompVis/ldm-celebahq-256@refs/pr/7/vqvae/diffusion_pytorch_model.safetensors")


@hookimpl
def register_aligners(register):
    register("dtda.daa", "fasbench_dtda.daa:DomainAdversarialAttack", version=1,
             description="Domain adversarial attack: perturb inputs so a domain classifier cannot tell the sources apart",
             config={k: v for k, v in DAA.items() if k != "name"})


@hookimpl
def register_methods(register):
    for name, ((p, g, d), description) in RECIPES.items():
        register(name, "fasbench_dtda.dtda:DTDA", version=1, description=description, config=_recipe(p, g, d))


@hookimpl
def register_commands(subparsers):
    from fasbench_dtda.commands import add_teachers_parser

    add_teachers_parser(subparsers)
