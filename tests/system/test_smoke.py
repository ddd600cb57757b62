"""The deployed stack as a client meets it."""
import pytest
import requests

from conftest import EXAMPLES


@pytest.mark.parametrize("label", sorted(EXAMPLES))
def test_classifies_each_class_through_nginx(base_url, label):
    r = requests.post(f"{base_url}/api/predizer_categoria", json={"descricao": EXAMPLES[label]}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["categoria"] == label


def test_serves_the_form(base_url):
    r = requests.get(f"{base_url}/", timeout=10)
    assert r.status_code == 200
    assert 'id="descricao"' in r.text
    assert r.headers["Server"] == "nginx"  # no version
