"""equivox.nets.classifier: InvariantClassifier with both pooling modes is invariant and exports."""
import pytest
import torch



@pytest.mark.parametrize("pooling", ["group", "norm"])
def test_classifier_pooling_modes_export(pooling):
    from equivox.nets import InvariantClassifier

    torch.manual_seed(0)
    clf = InvariantClassifier(channels=(2, 2), strides=(2,), group="octa", pooling=pooling).eval()
    x = torch.randn(2, 1, 8, 8, 8)
    y = clf(x)
    assert (clf(torch.rot90(x, 1, (2, 4))) - y).abs().max() < 1e-4 * y.abs().max()
    assert (clf.export()(x) - y).abs().max() < 1e-4
