"""Hook implementations of fasbench-dtda (lazy: importing this module imports no torch).

Every component declares its options once, in ``fasbench_dtda.options``; the five recipes
are one method class, each registered with the options class that holds its defaults.
"""
from __future__ import annotations

from fasbench.hookspecs import hookimpl
from fasbench_dtda.pretrain import resolve_synthetic_uri, synthetic_uri

#: The published teachers (the default weights on every dataset but the synthetic one).
ARCFACE_URI = "hf-hub:minchul/cvlface_arcface_ir101_webface4m"
LDM_VQ_URI = "hf-hub:CompVis/ldm-celebahq-256@refs/pr/7/vqvae/diffusion_pytorch_model.safetensors"

#: method name -> (options class in fasbench_dtda.options, description)
RECIPES = {
    "dtda": ("DTDAOptions", "DTDA: dual teachers (ArcFace + LDM VQ encoder) + domain adversarial attack"),
    "dtda-no-daa": ("DTDANoDAAOptions", "DTDA ablation: both teachers, no domain alignment"),
    "dtda-perceptual": ("DTDAPerceptualOptions", "DTDA ablation: perceptual teacher only + DAA"),
    "dtda-generative": ("DTDAGenerativeOptions", "DTDA ablation: generative teacher only + DAA"),
    "daa": ("DAAMethodOptions", "Domain adversarial attack only (ERM on DAA-perturbed images)"),
    "noise": ("NoiseMethodOptions", "Control of DAA: random sign noise of DAA's budget, no attack, same clean/perturbed CE"),
    "dtda-random-teachers": ("DTDARandomTeachersOptions",
                             "Control of DTDA: both teachers randomly initialised (init_seed 0), weights not loaded"),
}


#: The real-data cost setting (plugin README, "Cost at real size"): the generative teacher at 128 px,
#: tapped after ``down1``, both teachers every 4th step; 1.48x an ERM step for the teachers instead of
#: 34.7x at the paper's sizes. The synthetic world keeps the declared defaults (its stand-ins are small).
REAL_DATA_DEFAULTS = {"teacher_every": 4,
                      "teachers": {"generative": {"input_size": 128, "teacher_feature": "down1"}}}
#: which recipes take it: those with a teacher (daa and noise have none to make cheaper)
TEACHER_RECIPES = ("dtda", "dtda-no-daa", "dtda-perceptual", "dtda-generative", "dtda-random-teachers")


@hookimpl
def register_teachers(register):
    # default weights per dataset: the synthetic world has stand-ins pretrained by this plugin
    register("dtda.arcface", "fasbench_dtda.teachers:ArcFaceTeacher", version=1, kind="perceptual",
             description="ArcFace IResNet face recognition (CVLFace IR-101 WebFace4M; synthetic: a stand-in pretrained here)",
             options="fasbench_dtda.options:ArcFaceOptions",
             weights={"synthetic": synthetic_uri("perceptual"), "*": ARCFACE_URI})
    register("dtda.ldm_vq", "fasbench_dtda.teachers:LdmVQTeacher", version=1, kind="generative",
             description="VQ-VAE encoder of latent diffusion on CelebA-HQ "
                         "(CompVis/ldm-celebahq-256; synthetic: a stand-in pretrained here)",
             options="fasbench_dtda.options:LdmVQOptions",
             weights={"synthetic": synthetic_uri("generative"), "*": LDM_VQ_URI})


@hookimpl
def register_aligners(register):
    register("dtda.daa", "fasbench_dtda.daa:DomainAdversarialAttack", version=2,
             description="Domain adversarial attack: perturb inputs so a domain classifier cannot tell the sources apart",
             options="fasbench_dtda.options:DAAOptions")
    register("dtda.noise", "fasbench_dtda.daa:RandomNoise", version=1,
             description="DAA's null: random noise of DAA's L-inf budget, no attack, no classifier",
             options="fasbench_dtda.options:NoiseOptions")


@hookimpl
def register_methods(register):
    for name, (options, description) in RECIPES.items():
        extra = {"data_defaults": {"synthetic": {}, "*": REAL_DATA_DEFAULTS}} if name in TEACHER_RECIPES else {}
        register(name, "fasbench_dtda.dtda:DTDA", version=1, description=description,
                 options=f"fasbench_dtda.options:{options}", **extra)


@hookimpl
def resolve_weights(uri):
    """``dtda-synthetic:perceptual`` / ``dtda-synthetic:generative``: the synthetic-world stand-in
    teachers (pretrained into the cache on the first resolve)."""
    return resolve_synthetic_uri(uri)  # None for other schemes


@hookimpl
def register_commands(subparsers):
    from fasbench_dtda.commands import add_teachers_parser

    add_teachers_parser(subparsers)
