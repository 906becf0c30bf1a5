"""Covariates: declaration and case values in dataset.json, training statistics, encoding, plans, network inputs."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import assert_in, edit_json, make_task, validation_error
from universalclassifier.covariates import Covariate, check_case_covariates, encode_covariates, read_covariates_csv
from universalclassifier.dataset.dataset_json import read_dataset_json
from universalclassifier.errors import UserInputError
from universalclassifier.network.i3d import build_network

AGE, SEX = Covariate("age", "numeric"), Covariate("sex", "categorical", ("F", "M"))


def test_statistics_and_encoding_with_hand_computed_values():
    age = AGE.fit([40.0, 50.0, 90.0])
    assert (age.mean, age.fill) == (pytest.approx(60.0), 50.0)
    assert age.sd == pytest.approx(((400 + 100 + 900) / 3) ** 0.5)
    sex = SEX.fit(["M", "F", "M"])
    assert sex.fill == "M" and SEX.fit(["F", "M"]).fill == "F"  # a tie goes to the first category
    values = check_case_covariates([age, sex], {"age": 75, "sex": None}, "case x")
    assert values == {"age": 75.0, "sex": None}
    encoded = encode_covariates([age, sex], values)
    assert encoded.dtype.name == "float32" and len(encoded) == age.width + sex.width == 5
    assert list(encoded) == pytest.approx([(75 - 60) / age.sd, 0.0, 0.0, 1.0, 1.0])  # sex imputed as M, flagged
    assert list(encode_covariates([age], {})) == pytest.approx([(50 - 60) / age.sd, 1.0])
    assert Covariate.from_dict(json.loads(json.dumps(sex.to_dict())), "plans") == sex
    with pytest.raises(UserInputError, match="plans: covariate 'age' has damaged values or statistics"):
        Covariate.from_dict({**age.to_dict(), "sd": -1}, "plans")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"age": "old"}, "case x: covariate 'age' = 'old' is not a finite number of magnitude at most 1e+15 (or null)"),
        ({"age": 10**400}, "case x: covariate 'age' = 10000000000000000000000000000000000...(401 characters) is not a "
         "finite number of magnitude at most 1e+15 (or null)"),
        ({"age": -1e200}, "case x: covariate 'age' = -1e+200 is not a finite number"),
        ({"sex": "male"}, "case x: covariate 'sex' = 'male' is not one of ['F', 'M'] (or null)"),
        ({"weight": 80}, "case x: unknown covariate(s) ['weight']; the task declares ['age', 'sex']"),
        ([63, "F"], "case x: 'covariates' must be an object"),
    ],
)
def test_bad_case_values_are_refused(given, expected):
    with pytest.raises(UserInputError) as info:
        check_case_covariates([AGE, SEX], given, "case x")
    assert_in(str(info.value), expected)


def _with_covariates(tmp_path, declared, per_case):
    task = make_task(tmp_path)

    def change(d):
        d["covariates"] = declared
        for n, item in enumerate(d["training"]):
            item["covariates"] = per_case(n)

    edit_json(task, change)
    return task


def test_dataset_json_covariates_are_read_with_training_statistics(tmp_path):
    declared = [{"name": "age", "type": "numeric"}, {"name": "sex", "type": "categorical", "values": ["F", "M"]}]
    task = _with_covariates(tmp_path, declared, lambda n: {"age": None if n == 0 else 40 + 10 * n, "sex": "F"})
    description, problems = read_dataset_json(task / "dataset.json")
    assert problems == []
    age, sex = description.covariates
    assert age.mean == pytest.approx(70.0) and age.fill == 70.0 and sex.fill == "F"
    assert description.training[0].covariates == {"age": None, "sex": "F"}


@pytest.mark.parametrize(
    ("declared", "per_case", "expected"),
    [
        ([{"name": "age", "type": "number"}], lambda n: {}, "covariates[0] needs a 'name'"),
        ([{"name": "sex", "type": "categorical", "values": ["F"]}], lambda n: {},
         "covariate 'sex' is categorical: give its 'values' as 2 or more distinct strings"),
        ([{"name": "age", "type": "numeric"}], lambda n: {"age": None},
         "covariate 'age' has no known value in any training case"),
        ([{"name": "age", "type": "numeric"}], lambda n: {"age": "x"} if n == 2 else {"age": n},
         "case case_0002: covariate 'age' = 'x' is not a finite number"),
    ],
)
def test_bad_covariate_declarations_and_values_are_refused(tmp_path, declared, per_case, expected):
    task = _with_covariates(tmp_path, declared, per_case)
    assert_in(str(validation_error(task)), expected)


def test_case_covariates_without_a_declaration_are_refused(tmp_path):
    task = make_task(tmp_path)
    edit_json(task, lambda d: d["training"][1].__setitem__("covariates", {"age": 3}))
    assert_in(str(validation_error(task)), "case case_0001 has 'covariates' but the task declares none")


def test_the_network_fuses_covariates_and_refuses_a_mismatch():
    torch.manual_seed(0)
    network = build_network(2, [2], normalization="group", num_covariates=5, standardize_features=True).eval()
    x = torch.randn(3, 2, 8, 16, 16)
    first = network(x, torch.zeros(3, 5))[0]
    second = network(x, torch.ones(3, 5))[0]
    assert first.shape == (3, 2) and not torch.allclose(first, second)  # the covariates reach the heads
    with pytest.raises(ValueError, match=r"expected covariates of shape \(3, 5\), got None"):
        network(x)
    with pytest.raises(ValueError, match="this network has no covariate inputs"):
        build_network(2, [2])(x, torch.zeros(3, 5))


def test_covariates_csv(tmp_path):
    table = tmp_path / "c.csv"
    table.write_text("case_id,sex,age\na,F,63\nb,,\n")
    assert read_covariates_csv(table, [AGE, SEX]) == {"a": {"age": 63.0, "sex": "F"}, "b": {"age": None, "sex": None}}
    table.write_text("case_id,age,sex\na,sixty,F\n")
    with pytest.raises(UserInputError, match=r"c.csv, case a: covariate 'age' = 'sixty' is not a finite number"):
        read_covariates_csv(table, [AGE, SEX])
