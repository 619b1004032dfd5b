from setuptools import find_packages, setup

setup(
    name="genseq",
    version="0.1.0",
    description="Generate text, audio and images as token sequences with autoregressive RNNs and a sentence VAE",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["genseq", "genseq.*"]),
    package_data={"genseq": ["pretrained/*.pt", "demo_inputs/*"]},
    install_requires=[
        "torch>=2.1",
        "torchaudio>=2.1",
        "sentencepiece>=0.1.99",
        "numpy>=1.24",
        "soundfile>=0.12",
        "click>=8.1",
        "tqdm>=4.60",  # progress bars with rate and ETA: better than ours would be
        "pillow>=9",  # reads and writes every common image format
    ],
    extras_require={
        # the audio sampler's per-token loop compiled (genseq/kernels.py): one take 1.6x real time
        # on one thread against 1.2x in NumPy; without it the NumPy loop runs
        "fast": ["numba>=0.59"],
        "dev": ["pytest>=7", "numba>=0.59"],
    },
    entry_points={"console_scripts": ["genseq = genseq.cli:main"]},
)
