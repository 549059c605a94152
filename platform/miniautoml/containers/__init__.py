"""Containerized bentos: OCI images of a bento, built with BentoML's containerize.

`base_image` makes the Debian base offline (debootstrap + `podman import`, cached in podman's
store); `image` builds a bento on it and its image (podman, CPU torch from a wheel on disk).
"""
