"""keras-zoo: self-contained Keras 3 applications behind one Python face and one CLI (`zoo`).

    import zoo
    zoo.apps()                                   # the cards
    zoo.load("upscale", scale=4)("photo.jpg")    # an app's predictor, called on your input

Importing this package is cheap on purpose: Keras (and so TensorFlow) is
imported only by the app modules, when an app is loaded, trained or evaluated.
"""

from zoo.api import apps, load

__version__ = "0.1.0"
__all__ = ["apps", "load", "__version__"]
