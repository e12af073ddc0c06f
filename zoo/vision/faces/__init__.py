"""faces: "who is this?" on real photos. The app is `zoo.vision.faces.app` (`zoo.load("faces")`);
beside it `dlib_format` (dlib's files, read without dlib), `resnet` (its face ResNet in Keras),
`landmarks` (5 points and the aligned chip), `pipeline` (detect, align, embed: `Face`),
`training` (CosFace through harness.fit) and `evaluation` (ROC, EER, LFW's protocol).

Importing the package imports nothing heavy; its modules import Keras.
"""
