"""CIN-GAN: learn a microscope defect from unpaired frames and synthesise it on clean frames.

One module per part: :mod:`.layers` (conditional instance norm, the physical heads, generator
and critic), :mod:`.losses` (content and style losses, the style statistics, the gradient
penalty), :mod:`.model` (:class:`CINGAN`, its config and files), :mod:`.fit` (pre-training and
learning a new row from injected frames) and :mod:`.calibrate` (refitting a row's heads on
whole frames).
"""

from live_restore.adapt.cingan.calibrate import calibrate_row
from live_restore.adapt.cingan.fit import (
    GANTrainConfig,
    fit_cingan,
    pretrain_cingan,
    random_crops,
    unpaired_frames,
)
from live_restore.adapt.cingan.layers import (
    OUT_OF_FOCUS_SIGMAS_PX,
    CINGenerator,
    ConditionalInstanceNorm2d,
    LineJitterHead,
    OutOfFocusHead,
    PoissonGaussianHead,
    WGANCritic,
    out_of_focus,
)
from live_restore.adapt.cingan.losses import (
    content_loss,
    floor_slope,
    gradient_penalty,
    style_loss,
    style_statistics,
)
from live_restore.adapt.cingan.model import (
    CINGAN,
    FORMAT,
    FORMAT_VERSION,
    CINGANConfig,
    divergence_psnr,
    normalise_frames,
)

__all__ = [
    "CINGAN",
    "FORMAT",
    "FORMAT_VERSION",
    "OUT_OF_FOCUS_SIGMAS_PX",
    "CINGANConfig",
    "CINGenerator",
    "ConditionalInstanceNorm2d",
    "GANTrainConfig",
    "LineJitterHead",
    "OutOfFocusHead",
    "PoissonGaussianHead",
    "WGANCritic",
    "calibrate_row",
    "content_loss",
    "divergence_psnr",
    "fit_cingan",
    "floor_slope",
    "gradient_penalty",
    "normalise_frames",
    "out_of_focus",
    "pretrain_cingan",
    "random_crops",
    "style_loss",
    "style_statistics",
    "unpaired_frames",
]
