"""Stitching evaluators (being written; see issue 5)."""


class _Pending:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} lands in the next commit (issue 5).")


class DataForDecodingStitchEvaluator(_Pending):
    pass


class DataForMultiTaskDecodingStitchEvaluator(_Pending):
    pass


class DecodingStitchEvaluator(_Pending):
    pass


class MultiTaskDecodingStitchEvaluator(_Pending):
    pass
