"""Recognition: CNN, ResNet and ViT classifiers (cross-entropy, RandAugment, mixup/cutmix),
top-k prediction, accuracy and confusion matrices, and explanations (attention rollout, Grad-CAM);
real photos with a pretrained ImageNet backbone (``--model efficientnet-lite0``, see photos.py)."""

from .. import App, CommandRef, FamilyRef

APP = App(
    name="classify",
    summary="recognition: CNN / ResNet / ViT classifiers with explanations",
    families=(FamilyRef("classifier", "genvision.apps.classify.objective"),),
    evaluators={"classifier": "genvision.apps.classify.evaluate:evaluate_classifier_model"},
    calibrators={"classifier": "genvision.apps.classify.evaluate:calibration_inputs"},
    commands=(
        CommandRef("classify", "genvision.apps.classify.commands:classify",
                   "Print the top-k classes (with probabilities) of each image (ImageNet labels with "
                   "--model efficientnet-lite0)."),
        CommandRef("explain", "genvision.apps.classify.commands:explain",
                   "Show what a classifier looked at: attention rollout (ViT) or Grad-CAM (CNN, "
                   "efficientnet-lite0 on photos)."),
    ),
)
