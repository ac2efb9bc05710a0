"""SUT images: the backends' catalog, the wheelhouse and the content-tagged build."""
