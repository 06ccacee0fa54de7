class StaleVersion(Exception):
    """The opportunity changed since the caller read it; the write was not applied."""

    message = "This card was changed by someone else. The board now shows the latest state."

    def __init__(self, opportunity_id: int):
        super().__init__(self.message)
        self.opportunity_id = opportunity_id
