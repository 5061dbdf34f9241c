"""Small but complete configs of every registered model, shared by the checkpoint tests and the fuzz."""

# A new model must add one: test_checkpoints_validation checks that every registered model has one.
TINY = {
    "dcgan": {"image_size": 28, "channels": 1, "latent_dim": 8, "width": 8},
    "cnn": {"width": 4, "stages": 2, "feature_dim": 8},
    "resnet": {"image_size": 16, "width": 4, "blocks": [1, 1]},
    "vit": {"image_size": 8, "patch_size": 4, "dim": 8, "depth": 1, "heads": 2, "num_classes": 3},
    "dit": {"image_size": 8, "patch_size": 4, "dim": 8, "depth": 1, "heads": 2, "num_classes": 3},
    "vae": {"arch": "mlp", "hidden": 8, "layers": 1, "latent_dim": 4},
    "cvae": {"arch": "mlp", "hidden": 8, "layers": 1, "latent_dim": 4, "num_classes": 10},
    "vqvae": {"width": 4, "blocks": 0, "codebook_size": 8, "code_dim": 4},
    "bicubic": {"scale": 2},
    "espcn": {"scale": 2, "width": 4, "mid_width": 4},
    "edsr": {"scale": 2, "width": 4, "depth": 1},
    "srgan": {"scale": 2, "arch": "espcn", "generator": {"width": 4, "mid_width": 4}, "d_width": 4, "d_blocks": 1},
}
