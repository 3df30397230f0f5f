"""Logging in from a script: what docs/api.md says works, and what not."""
import re


def csrf_of(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_a_json_login_carries_the_csrf_token_in_the_header_not_the_body(testapp, factory):
    user = factory.user(password="secret")
    token = csrf_of(testapp.get("/login"))

    # The token in the JSON body is not read: refused, nobody logged in.
    refused = testapp.post_json("/login", {"username": user.username, "password": "secret",
                                           "csrf_token": token}, expect_errors=True)
    assert refused.status_int in (400, 403)
    assert testapp.get("/api/v1/job/", expect_errors=True).status_int == 401

    answer = testapp.post_json("/login", {"username": user.username, "password": "secret"},
                               headers={"X-CSRF-Token": token})
    assert answer.json["username"] == user.username
    new_token = answer.json["csrf_token"]
    assert testapp.get("/api/v1/job/").json["meta"]["total_count"] >= 0
    # Writes carry the token the login answered with.
    testapp.post_json("/logout", {}, headers={"X-CSRF-Token": new_token}, status=303)
