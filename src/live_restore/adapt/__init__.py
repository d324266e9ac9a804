"""Adapting a restorer to a new microscope: CIN-GAN defect learning and restorer fine-tuning."""
