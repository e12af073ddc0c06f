"""keras-zoo: self-contained Keras 3 applications behind one CLI (`zoo`).

Importing this package is cheap on purpose: Keras (and so TensorFlow) is
imported only by the app modules, when an app is trained, evaluated or demoed.
"""

__version__ = "0.1.0"
