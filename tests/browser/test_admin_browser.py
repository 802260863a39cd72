"""In a real browser, the admin's web administration: a file uploaded on the import page, its progress component
polling until the import (run here, playing the worker) finishes with the counts and a link to the dataset; then a
user created on the users page, who can log in."""
from labeler.store.db import Job, User, database, open_database
from labeler.worker import jobs
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD


def test_upload_a_file_then_create_a_user(browser, live_server, small_csv):
    server = live_server
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    log_in(page, server, "root")
    page.click("text=Import")
    page.wait_for_url(server.url + "/admin/import")
    page.set_input_files("input[name=file]", small_csv)
    page.fill("input[name=dataset]", "uploaded")
    page.fill("input[name=label_column]", "Class")
    page.click("form[data-upload] button[type=submit]")
    page.wait_for_selector("#import-job[data-state=queued]")
    assert "small.csv waits for the worker" in page.inner_text("#import-job")

    open_database(server.store)
    jobs.task_queue.open(server.config)  # the jobs the import queues go to the server's task queue
    with database.connection_context():
        job = Job.get((Job.kind == jobs.IMPORT) & (Job.state == "queued"))
        assert jobs.run(job.id, server.config) == "done"
    page.wait_for_selector("#import-job[data-state=done]")  # the component polled and replaced itself
    assert page.inner_text("#import-job [data-done]") == (
        "Dataset uploaded created from small.csv: 2,041 rows read, 2,041 added, 0 already present.")
    page.click("#import-job a:text('uploaded')")
    page.wait_for_url(server.url + "/datasets/uploaded")

    page.click("header >> text=Users")
    page.wait_for_url(server.url + "/admin/users")
    form = page.locator("form[data-create-user]")
    form.locator("input[name=name]").fill("carol")
    form.locator("select[name=role]").select_option("reviewer")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    page.wait_for_selector("[data-flash]")
    assert page.inner_text("[data-flash]") == "User 'carol' created with role reviewer."
    assert page.inner_text("tr[data-user=carol] [data-role]") == "reviewer"
    with database.connection_context():
        assert User.get(User.name == "carol").role == "reviewer"
    other = browser.new_page()
    log_in(other, server, "carol")
    assert "carol (reviewer)" in other.inner_text("header")
    other.close()
    page.close()
