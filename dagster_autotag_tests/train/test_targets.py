import numpy as np
import polars as pl

from dagster_autotag.train.targets import gate_vector, label_matrix


def test_label_matrix_from_series_and_lists():
    names = ["新车资讯/新车上市", "导购/报价", "用车/保养"]
    column = pl.Series("labels", [["导购/报价", "新车资讯/新车上市"], [], None, ["未知/标签", "用车/保养"]])
    expected = np.array([[1, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]], dtype=np.float32)
    for given in (column, column.to_list()):
        y = label_matrix(given, names)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, expected)
    assert label_matrix([], names).shape == (0, 3)


def test_gate_vector():
    v = gate_vector(pl.Series([True, False, None, True]))
    assert v.dtype == np.float32 and v.shape == (4, 1)
    assert v.ravel().tolist() == [1.0, 0.0, 0.0, 1.0]
