"""The VAE family: beta-VAE, conditional VAE and VQ-VAE; reconstruction, class edits, latent
traversals, encoding to latents or token grids, and likelihood evaluation (ELBO, IWAE NLL)."""

from .. import App, CommandRef, FamilyRef

APP = App(
    name="vae",
    summary="variational autoencoders: beta-VAE, CVAE, VQ-VAE, likelihoods and latent tools",
    families=(FamilyRef("vae", "genvision.apps.vae.objective", samples_images=True),
              FamilyRef("cvae", "genvision.apps.vae.conditional", samples_images=True),
              FamilyRef("vqvae", "genvision.apps.vae.quantized", samples_images=True)),
    evaluators={"vae": "genvision.apps.vae.evaluate:evaluate_vae_model"},
    commands=(
        CommandRef("reconstruct", "genvision.apps.vae.commands:reconstruct",
                   "Encode and decode images; CVAE class edits with --to-class."),
        CommandRef("traverse", "genvision.apps.vae.commands:traverse",
                   "Latent traversal grid: one latent dimension varied per row."),
        CommandRef("encode", "genvision.apps.vae.commands:encode",
                   "Encode images to latents or VQ token grids in a .npy file."),
        CommandRef("decode", "genvision.apps.vae.commands:decode",
                   "Decode a .npy of latents or token grids to an image grid."),
        CommandRef("likelihood", "genvision.apps.vae.commands:likelihood",
                   "Test-set -ELBO and importance-weighted NLL (nats and bits/dim)."),
    ),
)
