"""A class is a name, and its order is meaningful: what counts as the same label
(fgssl.data.labels), the class order read from the data (fgssl.data.class_order, the ICDR
spellings of fgssl.data.icdr), and how data=folder and data=csv apply them."""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from fgssl.data import CSVDataModule, FolderDataModule
from fgssl.data.class_order import derive_class_names
from fgssl.data.icdr import icdr_grade
from fgssl.data.labels import encode_labels, given_class_names, is_missing, label_key
from fgssl.errors import ConfigError, DataLayoutError
from layouts import make_csv_tree, make_folder_tree

SMALL: dict[str, object] = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)

APTOS_FOLDERS = ("No_DR", "Mild", "Moderate", "Severe", "Proliferate_DR")
"""A widely used Kaggle re-packaging of APTOS 2019: one folder per grade, grade order."""


def folder_module(root: Path, **kwargs: object) -> FolderDataModule:
    dm = FolderDataModule(root, **{**SMALL, **kwargs})  # type: ignore[arg-type]
    dm.setup()
    return dm


def csv_module(root: Path, **kwargs: object) -> CSVDataModule:
    dm = CSVDataModule(root, **{**SMALL, **kwargs})  # type: ignore[arg-type]
    dm.setup()
    return dm


def every_image(dm: FolderDataModule | CSVDataModule) -> pd.DataFrame:
    assert dm.splits is not None
    return pd.concat([dm.splits["train"], dm.splits["val"]])


# ------------------------------------------------------------------ the same label
@pytest.mark.parametrize(
    "spellings",
    [
        ["1", "1.0", "01", "+1", " 1 ", "1.", "001.000"],
        ["0.5", "0.50", ".5"],
        ["Melanoma", "melanoma", " MELANOMA "],
        ["No_DR", "No DR", "no-dr", "NO  DR", "no_-_dr"],
        [unicodedata.normalize("NFC", "Nævus Café"), unicodedata.normalize("NFD", "Nævus café")],
        ["STRASSE", "straße"],  # case folding, not lower()
    ],
)
def test_spellings_of_one_label_share_a_key(spellings: list[str]) -> None:
    assert len({label_key(s) for s in spellings}) == 1


@pytest.mark.parametrize(
    ("one", "other"),
    [("1", "-1"), ("1", "1.5"), ("1", "10"), ("1e0", "1"), ("mel", "melanoma"), ("a.b", "a b")],
)
def test_different_labels_keep_different_keys(one: str, other: str) -> None:
    assert label_key(one) != label_key(other)


def test_missing_markers() -> None:
    for missing in ("", "  ", "NA", "n/a", "N/A", "NaN", "nan", "None", "null", "NULL", "<NA>"):
        assert is_missing(missing), missing
    for label in ("0", "NAV", "nevus", "no", "N"):
        assert not is_missing(label), label
    # a class the user calls "none" is a label, not a missing value; empty never is
    assert not is_missing("None", ["none", "mild"]) and is_missing("", ["none", "mild"])


# ------------------------------------------------------------------- class order
def test_numbers_sort_numerically_and_are_named_canonically() -> None:
    folders = [str(n) for n in (3, 12, 1, 10, 2, 11, 5, 4, 6, 7, 8, 9)]
    expected = tuple(str(n) for n in range(1, 13))  # not 1, 10, 11, 12, 2, ...
    for ordinal in (False, True):
        assert derive_class_names(folders, ordinal=ordinal, where="w") == expected
    # pandas writes an integer column with a missing value as floats
    floats = ["2.0", "10.0", "1.0", "1", "01"]
    assert derive_class_names(floats, ordinal=True, where="w") == ("1", "2", "10")
    assert derive_class_names(["0.5", "10", "2.25"], ordinal=True, where="w") == (
        "0.5",
        "2.25",
        "10",
    )


def test_icdr_names_in_grade_order_only_when_ordinal(caplog: pytest.LogCaptureFixture) -> None:
    shuffled = ["Severe", "Mild", "Proliferate_DR", "No_DR", "Moderate", "Mild"]
    assert derive_class_names(shuffled, ordinal=True, where="w") == APTOS_FOLDERS
    with caplog.at_level(logging.INFO):
        nominal = derive_class_names(shuffled, ordinal=False, where="w")
    assert nominal == tuple(sorted(APTOS_FOLDERS))  # nominal classes: sorted, as before
    assert "look like ICDR grades: set data.ordinal=true" in caplog.text
    spelled = ["0 - No DR", "PDR", "Moderate NPDR", "mild non-proliferative DR", "Severe"]
    assert derive_class_names(spelled, ordinal=True, where="w") == (
        "0 - No DR",
        "mild non-proliferative DR",
        "Moderate NPDR",
        "Severe",
        "PDR",
    )
    # a subset of the grades keeps grade order
    assert derive_class_names(["Severe", "normal", "Mild"], ordinal=True, where="w") == (
        "normal",
        "Mild",
        "Severe",
    )


@pytest.mark.parametrize(
    ("label", "grade"),
    [
        *[("No_DR", 0), ("nodr", 0), ("0_No_DR", 0), ("1 - Mild", 1), ("2. Moderate", 2)],
        *[("Severe NPDR", 3), ("Proliferative DR", 4), ("proliferate-dr", 4), ("PDR", 4)],
        *[("3 Mild", None), ("Mildish", None), ("Doubtful", None)],
    ],
)
def test_icdr_spellings(label: str, grade: int | None) -> None:
    assert icdr_grade(label) == grade


def test_unknown_ordinal_names_are_refused() -> None:
    knee = ["Doubtful", "Minimal", "Moderate", "Severe", "Severe"]
    with pytest.raises(
        DataLayoutError,
        match=r"data.ordinal=true, but the grade order of the classes "
        r"\['Doubtful', 'Minimal', 'Moderate', 'Severe'\] found in the folders of x is not "
        r"known.*set data.class_names.*data.class_names=\[Doubtful,Minimal,Moderate,Severe\]",
    ):
        derive_class_names(knee, ordinal=True, where="the folders of x")
    with pytest.raises(DataLayoutError, match=r"\['PDR', 'Proliferative DR'\] are one ICDR grade"):
        derive_class_names(["No DR", "PDR", "Proliferative DR"], ordinal=True, where="w")


def test_spellings_of_a_class_are_merged_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    labels = ["Melanoma", "melanoma", "melanoma", "nevus", "Nevus ", "lentigo"]
    with caplog.at_level(logging.WARNING):
        names = derive_class_names(labels, ordinal=False, where="the labels of t.csv")
    # named by the most frequent spelling; a tie: the first in sorted order ('N' < 'n')
    assert names == ("Nevus", "lentigo", "melanoma")
    assert "['Melanoma', 'melanoma'] in the labels of t.csv are one class, 'melanoma'" in (
        caplog.text
    )


# --------------------------------------------------------------- given class names
def test_given_class_names(caplog: pytest.LogCaptureFixture) -> None:
    assert given_class_names([0, 1, 2]) == ("0", "1", "2")  # Hydra reads [0,1,2] as ints
    assert given_class_names(None) is None and given_class_names([]) is None
    with pytest.raises(ConfigError, match=r"\['No DR', 'no_dr'\] are the same label"):
        given_class_names(["No DR", "Mild", "no_dr"])
    with pytest.raises(ConfigError, match=r"one class more than once: \['1', '1.0'\]"):
        given_class_names(["1", "1.0"])
    with pytest.raises(ConfigError, match=r"non-empty names.*\[' '\]"):
        given_class_names(["a", " "])
    with pytest.raises(ConfigError, match="must be a list"):
        given_class_names("abc")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        FolderDataModule("/nowhere", class_names=sorted(APTOS_FOLDERS), ordinal=True)
    assert "not their ICDR grade order ['No_DR', 'Mild', 'Moderate', 'Severe'" in caplog.text


def test_integer_labels_are_positions_only_in_given_non_numeric_names() -> None:
    names = ("none", "mild", "severe")
    encoded = encode_labels(["0", "2.0", "Mild", " SEVERE"], names, source="s", indices=True)
    assert encoded == [0, 2, 1, 2]
    with pytest.raises(DataLayoutError, match=r"\['3'\] in s .*nor an index 0..2"):
        encode_labels(["3"], names, source="s", indices=True)
    # derived classes (indices=False): an integer is a name, never a position
    with pytest.raises(DataLayoutError, match=r"label\(s\) \['0'\] in s \(1 image\(s\), e\.g\. a"):
        encode_labels(["0"], names, source="s", ids=["a"])


# ----------------------------------------------------------------------- folders
def test_aptos_repackaging_is_read_in_grade_order(tmp_path: Path) -> None:
    """The Kaggle re-packaging's folders sort alphabetically as Mild, Moderate, No_DR,
    Proliferate_DR, Severe; read in that order, a model's QWK is wrong."""
    counts = dict(zip(APTOS_FOLDERS, (8, 3, 5, 2, 3), strict=True))
    root = make_folder_tree(tmp_path / "gaussian_filtered_images", counts)
    dm = folder_module(root, ordinal=True, seed=0)
    assert tuple(dm.class_names) == APTOS_FOLDERS
    table = every_image(dm)
    grade = {name: g for g, name in enumerate(APTOS_FOLDERS)}  # the folder's ICDR grade
    assert list(table["label"]) == [grade[i.split("/")[0]] for i in table["id"]]
    # QWK of one set of predictions (grades), by sklearn: read in the module's order it is
    # the QWK of the grades; read in the alphabetical order it is not
    truth = [0] * 8 + [1] * 3 + [2] * 5 + [3] * 2 + [4] * 3
    predicted = [0] * 7 + [1] + [1, 0, 2] + [2, 2, 2, 1, 3] + [3, 2] + [4, 4, 3]
    true_qwk = cohen_kappa_score(truth, predicted, weights="quadratic")

    def qwk(order: list[str]) -> float:
        index = [order.index(APTOS_FOLDERS[g]) for g in range(5)]
        return float(
            cohen_kappa_score(
                [index[g] for g in truth], [index[g] for g in predicted], weights="quadratic"
            )
        )

    assert qwk(list(dm.class_names)) == pytest.approx(true_qwk) == pytest.approx(0.9151, abs=1e-4)
    assert qwk(sorted(APTOS_FOLDERS)) == pytest.approx(0.4988, abs=1e-4)  # the old order


def test_numbered_folders_sort_numerically(tmp_path: Path) -> None:
    root = make_folder_tree(tmp_path / "grades", {str(n): 2 for n in range(1, 13)})
    dm = folder_module(root, ordinal=True, val_fraction=0.5, seed=0)
    assert tuple(dm.class_names) == tuple(str(n) for n in range(1, 13))
    table = every_image(dm)
    assert list(table["label"]) == [int(i.split("/")[0]) - 1 for i in table["id"]]


def test_folder_spellings_merged_and_matched_to_given_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_folder_tree(tmp_path / "a", {"No_DR": 3, "no dr": 1, "Severe": 2, "MILD": 2})
    with caplog.at_level(logging.WARNING):
        dm = folder_module(root, ordinal=True, val_fraction=0.25)
    assert tuple(dm.class_names) == ("No_DR", "MILD", "Severe")
    assert "['No_DR', 'no dr']" in caplog.text
    assert (every_image(dm)["label"] == 0).sum() == 4
    # given names match folders by the same rule; a folder '2' is a position in them
    make_folder_tree(tmp_path / "b", {"no-dr": 2, "Mild": 2, "2": 2})
    given = folder_module(tmp_path / "b", class_names=[" No DR", "mild", "Proliferative DR"])
    expected = {"no-dr": 0, "Mild": 1, "2": 2}
    table = every_image(given)
    assert list(table["label"]) == [expected[i.split("/")[0]] for i in table["id"]]
    make_folder_tree(tmp_path / "c", {"no-dr": 2, "Mild": 2, "3": 2})
    with pytest.raises(DataLayoutError, match=r"class folder\(s\) \['3'\].*nor an index 0..2"):
        folder_module(tmp_path / "c", class_names=["No DR", "Mild", "Proliferative DR"])


def test_folder_errors_name_the_folders(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_folder_tree(tmp_path / "knee", {"Doubtful": 2, "Minimal": 2, "Severe": 2})
    with pytest.raises(DataLayoutError, match=r"sub-folders of '.*knee'.*data.class_names"):
        folder_module(root, ordinal=True)
    dm = folder_module(root, ordinal=True, class_names=["Doubtful", "Minimal", "Severe"])
    assert tuple(dm.class_names) == ("Doubtful", "Minimal", "Severe")
    make_folder_tree(tmp_path / "val", {"Doubtful": 1, "Gone": 1})
    with pytest.raises(
        DataLayoutError,
        match=r"class folder\(s\) \['Gone'\] in '.*val' .*the classes are those of the "
        r"training images \(the sub-folders of '.*knee'\)",
    ):
        folder_module(root, val_root="../val")
    with caplog.at_level(logging.WARNING):
        listed = folder_module(
            root, val_root="../val", class_names=["Doubtful", "Minimal", "Severe", "Gone"]
        )
    assert "class(es) ['Gone'] have no training image" in caplog.text
    assert listed.splits is not None and set(listed.splits["val"]["label"]) == {0, 3}


# --------------------------------------------------------------------------- CSV
def test_csv_spellings_of_one_label_are_one_class(tmp_path: Path) -> None:
    table = make_csv_tree(tmp_path, integer_labels=True)  # labels 1, 2, 3
    table["label"] = [("{}", "{}.0", "0{}")[i % 3].format(v) for i, v in enumerate(table["label"])]
    table.to_csv(tmp_path / "labels.csv", index=False)
    dm = csv_module(tmp_path)
    assert tuple(dm.class_names) == ("1", "2", "3")
    truth = dict(zip(table["path"], table["label"], strict=True))
    assert all(
        int(float(truth[i])) - 1 == lab for i, lab in every_image(dm)[["id", "label"]].values
    )
    names = make_csv_tree(tmp_path / "names")
    names["label"] = [v.upper() if i % 4 == 0 else v for i, v in enumerate(names["label"])]
    names.to_csv(tmp_path / "names" / "labels.csv", index=False)
    assert tuple(csv_module(tmp_path / "names").class_names) == ("keratosis", "melanoma", "nevus")


def test_csv_missing_labels_are_refused_naming_the_lines(tmp_path: Path) -> None:
    table = make_csv_tree(tmp_path, integer_labels=True)
    # an integer column with a missing value: pandas writes it as floats, NaN as ''
    table["label"] = table["label"].astype(float)
    table.loc[[3, 10], "label"] = float("nan")
    table.to_csv(tmp_path / "labels.csv", index=False)
    assert "scans/p00_0.png,1.0," in (tmp_path / "labels.csv").read_text()
    with pytest.raises(
        DataLayoutError,
        match=r"2 row\(s\) of '.*labels.csv' have no label in 'label'.*line\(s\) 5 \(''\), 12",
    ):
        csv_module(tmp_path)
    table.to_csv(tmp_path / "labels.csv", index=False, na_rep="NA")
    with pytest.raises(DataLayoutError, match=r"line\(s\) 5 \('NA'\), 12 \('NA'\)"):
        csv_module(tmp_path)
    table.drop(index=[3, 10]).to_csv(tmp_path / "labels.csv", index=False)
    assert tuple(csv_module(tmp_path).class_names) == ("1", "2", "3")


def test_csv_split_labels_must_be_the_trainings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = make_csv_tree(tmp_path)  # nevus, melanoma, keratosis
    table[:18].to_csv(tmp_path / "train.csv", index=False)
    val = table[18:].assign(label=[str(i % 3) for i in range(6)])  # indices, not names
    val.to_csv(tmp_path / "val.csv", index=False)
    with pytest.raises(
        DataLayoutError,
        match=r"label\(s\) \['0', '1', '2'\] in '.*val.csv' \(6 image\(s\).*not among the "
        r"classes \['keratosis', 'melanoma', 'nevus'\]: the classes are those of the training "
        r"images \('.*train.csv'\).*data.class_names",
    ):
        csv_module(tmp_path, csv="train.csv", val_csv="val.csv")
    # given names: the indices are positions in them
    dm = csv_module(
        tmp_path, csv="train.csv", val_csv="val.csv", class_names=["nevus", "melanoma", "keratosis"]
    )
    assert dm.splits is not None and list(dm.splits["val"]["label"]) == [0, 1, 2, 0, 1, 2]
    # a split column: a validation label that training lacks is refused too
    table["fold"] = ["train"] * 18 + ["val"] * 6
    table.loc[20, "label"] = "lentigo"
    table.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(
        DataLayoutError, match=r"\['lentigo'\] in '.*labels.csv' \(rows with fold val\)"
    ):
        csv_module(tmp_path, split_column="fold")
    with caplog.at_level(logging.WARNING):
        listed = csv_module(
            tmp_path, split_column="fold", class_names=["keratosis", "melanoma", "nevus", "lentigo"]
        )
    assert "class(es) ['lentigo'] have no training image" in caplog.text
    assert listed.splits is not None and 3 in set(listed.splits["val"]["label"])


def test_csv_class_called_none_is_a_label_when_listed(tmp_path: Path) -> None:
    table = make_csv_tree(tmp_path, integer_labels=True)
    table["label"] = table["label"].map({"1": "None", "2": "mild", "3": "severe"})
    table.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataLayoutError, match=r"8 row\(s\).*no label.*\('None'\)"):
        csv_module(tmp_path)
    dm = csv_module(tmp_path, class_names=["none", "mild", "severe"], ordinal=True)
    assert sorted(every_image(dm)["label"].value_counts().tolist()) == [8, 8, 8]


def test_two_spellings_of_one_grade_are_refused_only_when_ordering_by_grade(
    caplog: pytest.LogCaptureFixture,
) -> None:
    labels = ["PDR", "Proliferative DR", "Mild"]
    assert derive_class_names(labels, ordinal=False, where="w") == tuple(sorted(labels))
    with caplog.at_level(logging.WARNING):  # the user's statement: no known order to check
        FolderDataModule("/nowhere", class_names=labels, ordinal=True)
    assert "not their" not in caplog.text
